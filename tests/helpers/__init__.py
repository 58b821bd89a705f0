"""Helpers shared by the tests (one place; test modules import from here, never from each other or conftest).

tests/ is on sys.path under pytest's default import mode, so tests write ``from helpers import ...``.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small networks so a training step takes milliseconds on 2 CPU cores.
TINY_MODEL = ["--final_size", "32", "--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--gpu_ids", "-1",
              "--no_progress"]


def make_tiny_dataset(root: Path, n: int = 12, size: int = 36, n_aus: int = 17, table: str = "pkl",
                      seed: int = 0, mode: str = "RGB", ext: str = ".jpg") -> Path:
    """root/imgs/face0000.jpg ... + an AU table (pkl, csv or json), no id lists."""
    from catalog.au_schema import schema_for_size
    from data.synthetic import make_dataset
    return make_dataset(root, n=n, size=size, seed=seed, schema=schema_for_size(n_aus), table=table,
                        image_mode=mode, ext=ext)
