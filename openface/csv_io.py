"""Read OpenFace FaceLandmarkImg / FeatureExtraction CSVs by column name."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS, OPENFACE_PRESENCE


@dataclass
class OpenFaceRows:
    """One CSV's rows: intensities (n, 17) in OpenFace order, presence (n, 18) with AU28, plus face/confidence."""

    path: Path
    intensity: np.ndarray
    presence: np.ndarray
    confidence: np.ndarray
    face: np.ndarray
    success: np.ndarray | None = None  # FeatureExtraction's per-frame tracking flag (1 when absent)


def read_openface_csv(path: str | Path) -> OpenFaceRows:
    path = Path(path)
    with open(path, newline="") as fh:
        # OpenFace separates its header with ", "; skipinitialspace strips the blanks from names and values.
        rows = list(csv.DictReader(fh, skipinitialspace=True))
    if not rows:
        raise ValueError(f"{path}: OpenFace CSV has no data rows (no face found?)")
    header = rows[0].keys()
    missing = [f"{au}_r" for au in OPENFACE_AUS if f"{au}_r" not in header]
    if missing:
        raise ValueError(f"{path}: not an OpenFace AU CSV, missing columns {missing[:5]}")

    def column(name: str, default: float = np.nan) -> np.ndarray:
        return np.array([float(r[name]) if name in r and r[name] not in ("", None) else default for r in rows])

    intensity = np.stack([column(f"{au}_r") for au in OPENFACE_AUS], axis=1)
    presence = np.stack([column(f"{au}_c", 0.0) for au in OPENFACE_PRESENCE], axis=1)
    return OpenFaceRows(path, intensity, presence, column("confidence", 1.0), column("face", 0.0),
                        column("success", 1.0))
