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


def clip_targets(folder: Path, root: Path, csv_root: Path, paths: list[Path]) -> tuple[str, list]:
    """(kind, per-frame targets) of one clip folder, from whichever OpenFace output exists for it."""
    relative = folder.relative_to(root)
    sequence_csv = csv_root / relative.parent / f"{folder.name}.csv"
    per_frame = csv_root / relative
    has_per_frame = per_frame.is_dir() and any((per_frame / f"{p.stem}.csv").is_file() for p in paths)
    if sequence_csv.is_file():
        if has_per_frame:
            raise ValueError(f"{folder}: OpenFace output of both kinds ({sequence_csv} and per-frame CSVs in "
                             f"{per_frame}); keep one")
        return SEQUENCE_KIND, sequence_targets(sequence_csv, paths)
    if has_per_frame:
        return PER_FRAME_KIND, per_frame_targets(per_frame, paths)
    raise FileNotFoundError(f"{folder}: no OpenFace output for this clip: expected {sequence_csv} "
                            f"(FeatureExtraction -fdir) or {per_frame}/<frame>.csv (FaceLandmarkImg -fdir)")


def measure_tree(root: Path, csv_root: Path, landmarker=None) -> list[MeasuredClip]:
    """Every clip of the tree, measured by MediaPipe beside its OpenFace targets; one kind of OpenFace output."""
    root, csv_root = Path(root), Path(csv_root)
    if not csv_root.is_dir():
        raise FileNotFoundError(f"--openface_csvs {csv_root}: no such folder")
    plan, kinds = [], set()
    for folder in clip_folders(root):
        paths = list(list_images(folder).values())
        kind, targets = clip_targets(folder, root, csv_root, paths)
        kinds.add(kind)
        relative = folder.relative_to(root)
        plan.append((relative.as_posix() if relative.parts else folder.name, paths, targets))
    if len(kinds) > 1:
        raise ValueError(f"{csv_root}: mixes {' and '.join(sorted(kinds))} output; their AU values differ, so "
                         f"calibrate on one kind")
    if landmarker is None:
        from openface.landmarks import Landmarker

        with Landmarker() as owned:
            return [measure_frames(name, paths, targets, owned) for name, paths, targets in plan]
    return [measure_frames(name, paths, targets, landmarker) for name, paths, targets in plan]


def tree_kind(root: Path, csv_root: Path) -> str:
    """Which kind of OpenFace output the tree holds (for the calibration's record)."""
    folder = clip_folders(root)[0]
    return clip_targets(folder, Path(root), Path(csv_root), list(list_images(folder).values()))[0]
