"""Reading what OpenFace wrote beyond the AU columns, and choosing one face when it found several.

openface/csv_io.py reads the face, confidence and AU columns; this adds the landmark box (to pick the largest face),
the frame/timestamp/success columns of a sequence, and the 17-intensity AU table the rest of the toolkit uses.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from openface.csv_io import OpenFaceRows, read_openface_csv
from openface.openface_bin import OpenFaceError

FACE_PICKS = ("confidence", "largest")


def read_columns(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Named numeric columns of an OpenFace CSV (those present); read_openface_csv covers face/confidence/AUs."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, skipinitialspace=True))
    header = rows[0].keys() if rows else ()
    return {n: np.array([float(r[n]) for r in rows]) for n in names if n in header}


def has_data_rows(path: Path) -> bool:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return any(any(cell.strip() for cell in row) for row in reader)


def face_sizes(path: str | os.PathLike) -> np.ndarray | None:
    """Area of each face's 2D-landmark box, one per CSV row; None when the CSV has no landmarks (run with -2Dfp)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, skipinitialspace=True))
    if not rows:
        return None
    xs = [k for k in rows[0] if re.fullmatch(r"x_\d+", k or "")]
    ys = [k for k in rows[0] if re.fullmatch(r"y_\d+", k or "")]
    if not xs or not ys:
        return None
    sizes = []
    for row in rows:
        x = np.array([float(row[k]) for k in xs])
        y = np.array([float(row[k]) for k in ys])
        sizes.append(float(np.ptp(x) * np.ptp(y)))
    return np.array(sizes)


def pick_face(rows: OpenFaceRows, how: str = "confidence") -> int:
    """Index of the face to keep when OpenFace found several.

    "confidence" (default, the choice data/prepare_aus.py makes) keeps the face OpenFace's landmark fit trusts most.
    "largest" keeps the biggest landmark box (usually the subject in a photo with faces behind), and needs a CSV
    written with -2Dfp.
    """
    if how not in FACE_PICKS:
        raise ValueError(f"unknown face pick '{how}', expected one of {FACE_PICKS}")
    if len(rows.confidence) == 1:
        return 0
    if how == "largest":
        sizes = face_sizes(rows.path)
        if sizes is None:
            raise ValueError(f"{rows.path}: choosing the largest face needs landmark columns (run OpenFace with -2Dfp)")
        return int(np.nanargmax(sizes))
    return int(np.nanargmax(rows.confidence))


def select_rows(rows: OpenFaceRows, index: int | np.ndarray) -> OpenFaceRows:
    """The same CSV reduced to some rows (keeps 2-D arrays)."""
    keep = np.atleast_1d(index)
    return dataclasses.replace(rows, intensity=rows.intensity[keep], presence=rows.presence[keep],
                               confidence=rows.confidence[keep], face=rows.face[keep],
                               success=None if rows.success is None else rows.success[keep])


def au_table_from_rows(rows: Mapping[str, OpenFaceRows], pick: str = "confidence"
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Image name -> 17 raw intensities (OpenFace order, 0..5), and name -> 18 presence flags (AU28 included).

    One face per image (see pick_face). The intensity dict is what data.au_table.save_au_table_csv writes.
    """
    intensities, presence = {}, {}
    for name, found in rows.items():
        best = pick_face(found, pick)
        intensities[name] = found.intensity[best].astype(np.float32)
        presence[name] = found.presence[best].astype(np.float32)
    return intensities, presence


def read_au_csv(path: Path, tool: str) -> OpenFaceRows:
    try:
        return read_openface_csv(path)
    except ValueError as err:
        if "missing columns" not in str(err):
            raise OpenFaceError(f"{path}: cannot read {tool}'s CSV: {err}") from err
        raise OpenFaceError(f"{err}. {tool} wrote no AU columns: check that its AU_predictors/ and model/ "
                            f"folders are next to the binary (OpenFace says 'Could not find the AU detection "
                            f"model')") from err
