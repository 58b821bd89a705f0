"""The calibration data: each distinct clip of an ULME-style MEGC package, measured once by MediaPipe, beside the
OpenFace 2 AU intensities the package ships for every frame (``csvs/``).

The package holds every clip twice (one folder per template, byte-identical frames), so a clip is keyed by
``<dataset>_<emotion>`` and read once. MediaPipe runs over the frames only once: the measurements are cached in an
``.npz`` file (landmarks, blendshapes and the OpenFace targets), which ``python -m openface.calibrate --cache``
re-uses while the files it was measured from are unchanged (it records their names, sizes and modification times;
after a change the clips are measured again). Frames are listed and decoded by media/images.py, like every other
image of the toolkit.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.images import list_images, load_rgb
from media.signature import files_signature
from openface.csv_io import read_openface_csv


@dataclass
class MeasuredClip:
    """One clip: per frame the MediaPipe face (landmarks, blendshapes) and OpenFace's AU intensities."""

    name: str
    frames: list[str]
    landmarks: np.ndarray  # (T, 478, 3) pixels
    blendshapes: np.ndarray  # (T, 52) in ``blendshape_names`` order
    blendshape_names: tuple[str, ...]
    openface: np.ndarray  # (T, 17) OpenFace intensities, OpenFace AU order


def frame_paths(folder: Path) -> list[Path]:
    """The images of a folder in natural order (``img2`` before ``img10``)."""
    return list(list_images(folder).values())


def megc_clip_folders(megc_root: Path) -> dict[str, Path]:
    """Clip key -> the first folder holding it (the other template's folder repeats the frames)."""
    out: dict[str, Path] = {}
    for folder in sorted(p for p in Path(megc_root).iterdir() if (p / "imgs").is_dir()):
        out.setdefault("_".join(folder.name.split("_")[:2]), folder)
    return out


def measure_frames(name: str, paths: list[Path], targets: list[np.ndarray | None], landmarker) -> MeasuredClip:
    """MediaPipe on every frame that has an OpenFace measurement (``targets[i]``: its 17 intensities, or None).
    Frames without one, or where MediaPipe finds no face, are left out of the calibration and counted aloud."""
    frames, landmarks, shapes, kept_targets, shape_names = [], [], [], [], ()
    no_openface = no_face = 0
    for path, target in zip(paths, targets):
        if target is None or np.all(np.isnan(target)):
            no_openface += 1
            continue
        faces = landmarker.detect(load_rgb(path))
        if not faces:
            no_face += 1
            continue
        shape_names = tuple(sorted(faces[0].blendshapes))
        frames.append(path.stem)
        landmarks.append(faces[0].landmarks)
        shapes.append([faces[0].blendshapes[n] for n in shape_names])
        kept_targets.append(target)
    if no_openface or no_face:
        print(f"{name}: {len(frames)} of {len(paths)} frames used ({no_openface} without an OpenFace measurement, "
              f"{no_face} without a MediaPipe face)")
    return MeasuredClip(name, frames, np.array(landmarks), np.array(shapes), shape_names, np.array(kept_targets))


def most_confident(csv_path: Path) -> np.ndarray:
    """The 17 intensities of the most confident face of a FaceLandmarkImg CSV."""
    rows = read_openface_csv(csv_path)
    return rows.intensity[int(np.nanargmax(rows.confidence))]


def measure_clip(name: str, folder: Path, landmarker) -> MeasuredClip:
    """One ULME-style pair folder: ``imgs/`` frames, ``csvs/<frame stem>.csv`` OpenFace output per frame."""
    paths = frame_paths(folder / "imgs")
    return measure_frames(name, paths, [most_confident(folder / "csvs" / f"{p.stem}.csv") for p in paths],
                          landmarker)


def measure_package(megc_root: Path) -> list[MeasuredClip]:
    from openface.landmarks import Landmarker

    with Landmarker() as landmarker:
        return [measure_clip(name, folder, landmarker) for name, folder in megc_clip_folders(megc_root).items()]


INPUTS_KEY = "__inputs__"  # the cache's record of the files it was measured from


def save(clips: list[MeasuredClip], path: Path, signature: str = "") -> None:
    arrays = {INPUTS_KEY: np.array(signature)}
    for c in clips:
        arrays.update({f"{c.name}/frames": np.array(c.frames), f"{c.name}/landmarks": c.landmarks,
                       f"{c.name}/blendshapes": c.blendshapes, f"{c.name}/openface": c.openface,
                       f"{c.name}/blendshape_names": np.array(c.blendshape_names)})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load(path: Path) -> list[MeasuredClip]:
    with np.load(path) as data:
        names = sorted({key.split("/")[0] for key in data.files if key != INPUTS_KEY})
        return [MeasuredClip(n, data[f"{n}/frames"].tolist(), data[f"{n}/landmarks"], data[f"{n}/blendshapes"],
                             tuple(data[f"{n}/blendshape_names"].tolist()), data[f"{n}/openface"]) for n in names]


def cached_signature(path: Path) -> str | None:
    try:
        with np.load(path) as data:
            return str(data[INPUTS_KEY]) if INPUTS_KEY in data.files else None
    except (OSError, ValueError):
        return None  # damaged: measured again


def measured_clips(megc_root: Path, cache: Path | None = None, measure=None,
                   inputs: list[Path] | None = None) -> list[MeasuredClip]:
    """The package's clips, from ``cache`` when it was measured from the same files (``inputs``, default the root:
    names, sizes, modification times); else measured now and written there. ``measure``: a function of the root
    measuring another layout (``openface.clip_tree.measure_tree``)."""
    signature = files_signature(inputs or [Path(megc_root)])
    if cache is not None and Path(cache).is_file():
        if cached_signature(Path(cache)) == signature:
            return load(Path(cache))
        print(f"{cache}: measured from other files than {megc_root} holds now (changed since, another folder, or "
              f"an older cache): measuring again", file=sys.stderr)
    clips = (measure or measure_package)(Path(megc_root))
    if cache is not None:
        save(clips, Path(cache), signature)
    return clips
