"""Shared fixtures: tiny generated face-like datasets and the location of the real data in ../shared/data."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(2)  # CI has 2 cores; fixed thread count also keeps CPU results bit-stable


def make_tiny_dataset(root: Path, n: int = 12, size: int = 36, n_aus: int = 17, table: str = "pkl",
                      seed: int = 0, mode: str = "RGB", ext: str = ".jpg") -> Path:
    """root/imgs/face0000.jpg ... + an AU table (pkl, csv or json), no id lists."""
    from data.synthetic import make_dataset
    from openface.au_schema import schema_for_size
    return make_dataset(root, n=n, size=size, seed=seed, schema=schema_for_size(n_aus), table=table,
                        image_mode=mode, ext=ext)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_tiny_dataset(tmp_path / "data")


@pytest.fixture
def megc_root() -> Path:
    root = SHARED_DATA / "megc2021"
    if not root.is_dir():
        pytest.skip(f"real MEGC2021 data not found at {root} (CI provides ../shared/data)")
    return root


# Small networks so a training step takes milliseconds on 2 CPU cores.
TINY_MODEL = ["--final_size", "32", "--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--gpu_ids", "-1",
              "--no_progress"]
