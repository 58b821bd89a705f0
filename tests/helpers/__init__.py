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


# A refit of the AU calibration (python -m openface.calibrate) against the shipped au_calibration.json. MediaPipe's
# XNNPACK kernels pick their code path by CPU, so landmarks differ in the last digits between machines, and so do the
# fitted numbers: measured on an AMD EPYC against the shipped file (fitted on another x86-64), at most 1.4e-6 relative
# on a gain (AU25's per-image gain, 2.785004 against 2.785008) and 3.4e-6 absolute on an r. What matters is the fit
# to the precision it is used and reported with, not the last digits:
# - a gain moves an intensity on OpenFace's 0..5 scale, which OpenFace writes with 2 decimals; 1e-4 relative moves
#   a 5.0 intensity by 5e-4, a twentieth of that digit (70x the measured difference);
# - an r is printed with 3 decimals (openface.calibrate's tables, docs/au_estimator.md): half that last digit.
CALIBRATION_GAIN_REL = 1e-4
CALIBRATION_R_ABS = 5e-4


def assert_same_calibration(fitted: dict, shipped: dict) -> None:
    """The refit's gains and leave-one-clip-out Fisher means match the shipped file's, to the precision above."""
    import pytest

    from catalog.au_schema import OPENFACE_AUS
    for au in OPENFACE_AUS:
        assert fitted["aus"][au]["gain"] == pytest.approx(shipped["aus"][au]["gain"], rel=CALIBRATION_GAIN_REL), au
        assert fitted["sequence"]["gains"][au] == pytest.approx(shipped["sequence"]["gains"][au],
                                                                rel=CALIBRATION_GAIN_REL), au
    for mode in ("sequence_fisher_over_aus", "image_fisher_over_aus"):
        assert fitted["leave_one_clip_out_within_clip_r"][mode] == pytest.approx(
            shipped["leave_one_clip_out_within_clip_r"][mode], abs=CALIBRATION_R_ABS), mode


def make_tiny_dataset(root: Path, n: int = 12, size: int = 36, n_aus: int = 17, table: str = "pkl",
                      seed: int = 0, mode: str = "RGB", ext: str = ".jpg") -> Path:
    """root/imgs/face0000.jpg ... + an AU table (pkl, csv or json), no id lists."""
    from catalog.au_schema import schema_for_size
    from data.synthetic import make_dataset
    return make_dataset(root, n=n, size=size, seed=seed, schema=schema_for_size(n_aus), table=table,
                        image_mode=mode, ext=ext)
