"""One door for model files, below solvers/ and above models/: this toolkit's format (native.py), the seeds' formats
(seed_formats.py) and their importers (importers.py), and the entry point that finds (locate.py) and reads a file
once (reading.py: ``read`` -> ``Checkpoint``). ``python -m checkpoints`` imports a seed's checkpoint.

Imports point one way: reading -> importers -> locate -> native, seed_formats; models/ only for the registry."""
from checkpoints.native import BUNDLED_CHECKPOINT, SMALL_CHECKPOINT
from checkpoints.reading import Checkpoint, read

__all__ = ["BUNDLED_CHECKPOINT", "SMALL_CHECKPOINT", "Checkpoint", "read"]
