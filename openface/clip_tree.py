"""Calibration data from a researcher's own clips: a tree of frame folders with OpenFace's output for each.

    python -m openface.calibrate --clips CASME2/ --openface_csvs openface_out/ --fps 200 --out my_calibration.json

Every folder under ``--clips`` that holds images is one clip (frames in natural order, the first being the onset).
Its OpenFace output sits at the same relative path under ``--openface_csvs``, in one of the two forms OpenFace 2.x
writes for a folder of frames:

- ``<clip>.csv``: FeatureExtraction ``-fdir <clip>``, one row per frame. OpenFace numbers the frames in its own
  order (``-fdir`` reads ``.jpg .jpeg .png .bmp``, case-sensitively, sorted as text: ``img10`` before ``img2``), so
  row ``frame = k`` is the k-th of those names in text order. Frames where it lost the face (``success = 0``) are
  left out. FeatureExtraction uses OpenFace's dynamic AU models (normalised per sequence).
- ``<clip>/<frame stem>.csv``: FaceLandmarkImg ``-fdir <clip>``, one CSV per frame (the most confident face is
  used; a frame without a CSV had no face). Static AU models, as in the MEGC2021 package.

The two kinds give different AU values for the same frame, so one calibration uses one kind: a tree that mixes them
is refused. The shipped calibration is of the static kind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from media.images import list_images
from openface.megc_clips import MeasuredClip, measure_frames, most_confident
from openface.openface_outputs import read_au_csv, read_columns

OPENFACE_FOLDER_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")  # what FeatureExtraction -fdir reads (case-sensitive)
SEQUENCE_KIND, PER_FRAME_KIND = "FeatureExtraction (dynamic AU models)", "FaceLandmarkImg (static AU models)"


def clip_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) that holds images, in natural order of their paths."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--clips {root}: no such folder")
    folders = [p for p in [root, *sorted(root.rglob("*"))] if p.is_dir() and list_images(p)]
    if not folders:
        raise FileNotFoundError(f"--clips {root}: no folder with images under it")
    return folders


def openface_order(paths: list[Path]) -> list[Path]:
    """The frames FeatureExtraction -fdir reads, in the order it numbers them."""
    return sorted((p for p in paths if p.suffix in OPENFACE_FOLDER_EXTENSIONS), key=lambda p: p.name)


def sequence_targets(csv_path: Path, paths: list[Path]) -> list[np.ndarray | None]:
    """Per frame (natural order) its intensities from a FeatureExtraction CSV, None where tracking failed."""
    ordered = openface_order(paths)
    rows = read_au_csv(csv_path, "FeatureExtraction")
    extra = read_columns(csv_path, ("frame", "success"))
    n = len(rows.confidence)
    numbers = extra.get("frame", np.arange(1, n + 1)).astype(int)
    if len(ordered) != n or sorted(numbers.tolist()) != list(range(1, n + 1)):
        raise ValueError(f"{csv_path}: {n} rows (frames {numbers.min()}..{numbers.max()}) for {len(ordered)} frames "
                         f"OpenFace can read in {paths[0].parent}: was it written by FeatureExtraction -fdir on this "
                         f"folder? Re-run OpenFace on it, or remove the folder from --clips")
    success = extra["success"] > 0.5 if "success" in extra else np.ones(n, dtype=bool)
    by_path = {ordered[k - 1]: (rows.intensity[i] if success[i] else None) for i, k in enumerate(numbers)}
    return [by_path.get(p) for p in paths]


def per_frame_targets(csv_folder: Path, paths: list[Path]) -> list[np.ndarray | None]:
    return [most_confident(csv_folder / f"{p.stem}.csv") if (csv_folder / f"{p.stem}.csv").is_file() else None
            for p in paths]


def clip_output(folder: Path, root: Path, csv_root: Path, paths: list[Path]) -> tuple[str, Path]:
    """(kind, location) of the OpenFace output for one clip folder: its sequence CSV or its per-frame CSV folder.
    Only looks at which files exist; reading them is ``clip_targets``."""
    relative = folder.relative_to(root)
    sequence_csv = csv_root / relative.parent / f"{folder.name}.csv"
    per_frame = csv_root / relative
    has_per_frame = per_frame.is_dir() and any((per_frame / f"{p.stem}.csv").is_file() for p in paths)
    if sequence_csv.is_file():
        if has_per_frame:
            raise ValueError(f"{folder}: OpenFace output of both kinds ({sequence_csv} and per-frame CSVs in "
                             f"{per_frame}); keep one")
        return SEQUENCE_KIND, sequence_csv
    if has_per_frame:
        return PER_FRAME_KIND, per_frame
    raise FileNotFoundError(f"{folder}: no OpenFace output for this clip: expected {sequence_csv} "
                            f"(FeatureExtraction -fdir) or {per_frame}/<frame>.csv (FaceLandmarkImg -fdir)")


def clip_targets(kind: str, location: Path, paths: list[Path]) -> list[np.ndarray | None]:
    return sequence_targets(location, paths) if kind == SEQUENCE_KIND else per_frame_targets(location, paths)


def clip_name(folder: Path, root: Path) -> str:
    relative = folder.relative_to(root)
    return relative.as_posix() if relative.parts else folder.name


def tree_outputs(root: Path, csv_root: Path) -> tuple[str, list[tuple[Path, list[Path], Path]]]:
    """The tree's one kind of OpenFace output, and per clip (folder, frames, output location)."""
    root, csv_root = Path(root), Path(csv_root)
    if not csv_root.is_dir():
        raise FileNotFoundError(f"--openface_csvs {csv_root}: no such folder")
    clips, kinds = [], set()
    for folder in clip_folders(root):
        paths = list(list_images(folder).values())
        kind, location = clip_output(folder, root, csv_root, paths)
        kinds.add(kind)
        clips.append((folder, paths, location))
    if len(kinds) > 1:
        raise ValueError(f"{csv_root}: mixes {' and '.join(sorted(kinds))} output; their AU values differ, so "
                         f"calibrate on one kind")
    return kinds.pop(), clips


def measure_tree(root: Path, csv_root: Path, landmarker=None) -> list[MeasuredClip]:
    """Every clip of the tree, measured by MediaPipe beside its OpenFace targets. Every CSV is read (and refused
    if unusable) before MediaPipe starts."""
    kind, clips = tree_outputs(root, csv_root)
    plan = [(clip_name(folder, Path(root)), paths, clip_targets(kind, location, paths))
            for folder, paths, location in clips]
    def measure_all(with_landmarker) -> list[MeasuredClip]:
        return [measure_frames(name, paths, targets, with_landmarker) for name, paths, targets in plan]

    if landmarker is not None:
        return measure_all(landmarker)
    from openface.landmarks import Landmarker

    with Landmarker() as owned:
        return measure_all(owned)


def tree_kind(root: Path, csv_root: Path) -> str:
    """Which kind of OpenFace output the tree holds (for the calibration's record); reads no CSV."""
    return tree_outputs(root, csv_root)[0]
