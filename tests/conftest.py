"""Shared fixtures: tiny generated face-like datasets and the location of the real data in ../shared/data.

Plain helper functions live in tests/helpers/; this file only holds fixtures and pytest hooks.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from helpers import ROOT, SHARED_DATA, make_tiny_dataset

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(2)  # CI has 2 cores; fixed thread count also keeps CPU results bit-stable

# The tests measure with the shipped files: a developer's own refit or Inception weights (environment) must not leak
# into them; the tests that need these variables set them themselves.
for _variable in ("MEGAN_AU_CALIBRATION", "MEGAN_INCEPTION"):
    os.environ.pop(_variable, None)
# Evaluations through main.py keep source measurements in the default cache folder: a throw-away one for the
# session, never the developer's ~/.cache (removed at the end).
os.environ["MEGAN_CACHE"] = tempfile.mkdtemp(prefix="megan-test-cache-")

HEAVY_KINDS = ("ddp", "compile", "onnx", "visdom", "browser")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(os.environ.get("MEGAN_CACHE", ""), ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """A heavy kind implies slow, so one expression (`-m "not slow"`) gives the fast tier."""
    for item in items:
        if any(item.get_closest_marker(kind) for kind in HEAVY_KINDS) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_tiny_dataset(tmp_path / "data")


@pytest.fixture
def megc_root() -> Path:
    root = SHARED_DATA / "megc2021"
    if not root.is_dir():
        pytest.skip(f"real MEGC2021 data not found at {root} (CI provides ../shared/data)")
    return root
