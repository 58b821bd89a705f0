"""Shared fixtures: tiny generated face-like datasets and the location of the real data in ../shared/data."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(2)  # CI has 2 cores; fixed thread count also keeps CPU results bit-stable


def synthetic_face(rng: np.random.Generator, size: int) -> Image.Image:
    """A cartoon face with random colours and a mouth whose opening varies: enough structure for a GAN step."""
    img = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 255, 3)))
    d = ImageDraw.Draw(img)
    m = size // 8
    d.ellipse([m, m, size - m, size - m], fill=tuple(int(c) for c in rng.integers(120, 255, 3)))
    for cx in (size * 3 // 8, size * 5 // 8):
        d.ellipse([cx - 2, size // 3, cx + 2, size // 3 + 3], fill=(0, 0, 0))
    open_px = int(rng.integers(1, max(2, size // 6)))
    d.rectangle([size * 3 // 8, size * 2 // 3, size * 5 // 8, size * 2 // 3 + open_px], fill=(90, 0, 0))
    return img


def make_tiny_dataset(root: Path, n: int = 12, size: int = 36, n_aus: int = 17, table: str = "pkl",
                      seed: int = 0, mode: str = "RGB", ext: str = ".jpg") -> Path:
    """root/imgs/*.jpg + an AU table (pkl, csv or json), no id lists."""
    rng = np.random.default_rng(seed)
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    aus = {}
    for i in range(n):
        name = f"face{i:03d}"
        synthetic_face(rng, size).convert(mode).save(root / "imgs" / f"{name}{ext}")
        aus[name] = np.round(rng.uniform(0, 5, n_aus) * (rng.random(n_aus) < 0.4), 2)
    from openface.au_schema import schema_for_size
    schema = schema_for_size(n_aus)
    if table == "pkl":
        with open(root / "aus_openface.pkl", "wb") as fh:
            pickle.dump(aus, fh)
    elif table == "csv":
        from data.au_table import save_au_table_csv
        save_au_table_csv(aus, root / "aus.csv", schema)
    elif table == "json":
        import json
        (root / "aus.json").write_text(json.dumps({k: v.tolist() for k, v in aus.items()}))
    return root


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
