"""Real micro-expression AU curves for N2ME's second stage: one clip id -> per-frame AU intensities.

Clip ids start with their dataset's prefix (catalog/datasets.py: ``clip_prefix``, N2ME's ``c_sub01_EP02_01f`` for
CASME II). In the dataset's AU folder a clip is either
``<clip>.csv`` (OpenFace FeatureExtraction output: one row per frame) or ``<clip>/`` (its frames, measured by the
built-in front end).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog.datasets import dataset_of_clip_id
from media.images import list_images, load_rgb
from openface.csv_io import read_openface_csv

# Longest run of frames without a face that is filled by interpolation without comment.
MAX_SILENT_GAP = 5


@dataclass
class ClipCurve:
    clip_id: str
    aus: np.ndarray  # (T, 17) raw OpenFace intensities
    fps: float
    source: Path
    notes: list[str] = field(default_factory=list)


def fill_gaps(aus: np.ndarray, valid: np.ndarray, max_silent_gap: int = MAX_SILENT_GAP):
    """Linearly interpolate the frames where no face was tracked (ends take the nearest valid frame).

    Returns the filled curve and the (start, length) of gaps longer than ``max_silent_gap``, to be reported."""
    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        raise ValueError("no frame of the clip has a tracked face")
    t = np.arange(len(aus))
    filled = np.stack([np.interp(t, t[valid], aus[valid, j]) for j in range(aus.shape[1])], axis=1)
    long_gaps, start = [], None
    for i, ok in enumerate(np.append(valid, True)):
        if not ok and start is None:
            start = i
        elif ok and start is not None:
            if i - start > max_silent_gap:
                long_gaps.append((start, i - start))
            start = None
    return filled, long_gaps


def load_clip_curve(clip_id: str, aus_dirs: dict[str, Path], front_end=None) -> ClipCurve:
    """The clip's AU curve from its dataset folder (CSV, or frames measured by ``front_end``); ``aus_dirs`` is keyed
    by dataset key (catalog/datasets.py)."""
    dataset, clip = dataset_of_clip_id(clip_id)
    folder = aus_dirs.get(dataset.key)
    if folder is None:
        raise FileNotFoundError(f"{clip_id}: no AU folder given for {dataset.title} (--{dataset.aus_dir_flag})")
    fps = dataset.fps
    if (folder / f"{clip}.csv").is_file():
        rows = read_openface_csv(folder / f"{clip}.csv")
        valid = ~np.isnan(rows.intensity).any(axis=1)
        if rows.success is not None:
            valid &= rows.success > 0
        aus, gaps = fill_gaps(np.nan_to_num(rows.intensity), valid)
        return ClipCurve(clip_id, aus, fps, folder / f"{clip}.csv", _gap_notes(clip_id, gaps, int((~valid).sum())))
    if (folder / clip).is_dir() and front_end is not None:
        return _measure_frames(clip_id, folder / clip, fps, front_end)
    raise FileNotFoundError(f"{clip_id}: neither {folder / (clip + '.csv')} nor a frame folder {folder / clip}")


def _measure_frames(clip_id: str, frames_dir: Path, fps: float, front_end) -> ClipCurve:
    """The clip's AUs in the estimator's sequence mode (movement from the first face frame)."""
    from openface.frontend import NoFaceError, follow_clip

    frames = list(list_images(frames_dir).values())
    if not frames:
        raise FileNotFoundError(f"{frames_dir} holds no frames")
    aus, valid, found = np.zeros((len(frames), 17)), np.zeros(len(frames), dtype=bool), []
    for i, path in enumerate(frames):
        try:
            found.append(front_end.measure(load_rgb(path), str(path)))
            valid[i] = True
        except NoFaceError:
            pass
    follow_clip(found, front_end.estimator, fps)
    if found:
        aus[valid] = np.stack([m.intensity for m in found])
    filled, gaps = fill_gaps(aus, valid)
    return ClipCurve(clip_id, filled, fps, frames_dir, _gap_notes(clip_id, gaps, int((~valid).sum())))


def _gap_notes(clip_id: str, gaps: list, missing: int) -> list[str]:
    notes = [f"{clip_id}: no face in {missing} frame(s), interpolated"] if missing else []
    notes += [f"{clip_id}: {length} frames without a face from frame {start}: interpolated across a long gap"
              for start, length in gaps]
    return notes
