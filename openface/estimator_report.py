"""The built-in AU estimator on posed expressions (London set) and its speed.

    python -m openface.estimator_report --london ../shared/data/london [--megc_root ../shared/data/megc2021]

London: 80 people, each a neutral (``NNN_03.jpg``) and a smiling (``NNN_08.jpg``) photo. Per AU, for how many
people the smiling photo scores higher than the neutral one, in the per-image mode and in the sequence mode (the
pair taken as a two-frame clip: neutral onset, smiling apex). A smile must raise AU12 and AU06.

Speed: frames per second of MediaPipe + the estimator on the MEGC clip frames (128 px) and on the London photos
(512 px), and of the estimator alone (landmark measures, blendshape sources, per-image and sequence intensities)
on faces already detected. One process, the machine's default thread count.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from media.images import load_rgb
from openface.au_estimator import AUEstimator
from openface.landmarks import Face, Landmarker
from openface.megc_clips import frame_paths, megc_clip_folders


def london_faces(root: Path, landmarker: Landmarker) -> dict[str, tuple[Face, Face]]:
    """person id -> (neutral face, smiling face)."""
    pairs = {}
    for neutral in frame_paths(root / "neutral"):
        person = neutral.stem.split("_")[0]
        smiling = root / "smiling" / f"{person}_08.jpg"
        faces = landmarker.detect(load_rgb(neutral)), landmarker.detect(load_rgb(smiling))
        if faces[0] and faces[1]:
            pairs[person] = (faces[0][0], faces[1][0])
    return pairs


def smile_wins(pairs: dict[str, tuple[Face, Face]], estimator: AUEstimator) -> dict[str, dict[str, int]]:
    """mode -> AU -> number of people whose smiling photo scores higher."""
    image = np.array([[estimator.intensities(f) for f in pair] for pair in pairs.values()])  # (P, 2, 17)
    sequence = np.array([estimator.sequence(list(pair)) for pair in pairs.values()])
    return {mode: {au: int((v[:, 1, j] > v[:, 0, j]).sum()) for j, au in enumerate(OPENFACE_AUS)}
            for mode, v in (("image", image), ("sequence", sequence))}


def frames_per_second(images: list[np.ndarray], landmarker: Landmarker, estimator: AUEstimator) -> tuple[float, float]:
    """(MediaPipe + estimator, estimator alone) frames per second over ``images`` treated as one clip."""
    start = time.perf_counter()
    faces = [landmarker.detect(rgb)[0] for rgb in images]
    estimator.sequence(faces, fps=200)
    total = time.perf_counter() - start
    start = time.perf_counter()
    estimator.sequence(faces, fps=200)
    alone = time.perf_counter() - start
    return len(images) / total, len(images) / alone


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--london", required=True)
    p.add_argument("--megc_root", default=None, help="also time the estimator on these 128 px clip frames")
    args = p.parse_args(argv)
    estimator = AUEstimator()
    report: dict = {}
    with Landmarker() as landmarker:
        pairs = london_faces(Path(args.london), landmarker)
        report["london"] = smile_wins(pairs, estimator)
        print(f"London, {len(pairs)} people: smiling > neutral, per AU (per-image mode / sequence mode)")
        print("| AU | " + " | ".join(OPENFACE_AUS) + " |\n|" + " --- |" * (len(OPENFACE_AUS) + 1))
        print("| image | " + " | ".join(str(report["london"]["image"][au]) for au in OPENFACE_AUS) + " |")
        print("| sequence | " + " | ".join(str(report["london"]["sequence"][au]) for au in OPENFACE_AUS) + " |")
        photos = [load_rgb(path) for sub in ("neutral", "smiling") for path in frame_paths(Path(args.london) / sub)]
        report["fps_london"] = frames_per_second(photos, landmarker, estimator)
        print(f"{len(photos)} London photos (512 px): {report['fps_london'][0]:.1f} frames/s with MediaPipe, "
              f"{report['fps_london'][1]:.0f} frames/s estimator alone")
        if args.megc_root:
            frames = [load_rgb(path) for folder in megc_clip_folders(Path(args.megc_root)).values()
                      for path in frame_paths(folder / "imgs")]
            report["fps_megc"] = frames_per_second(frames, landmarker, estimator)
            print(f"{len(frames)} MEGC clip frames (128 px): {report['fps_megc'][0]:.1f} frames/s with MediaPipe, "
                  f"{report['fps_megc'][1]:.0f} frames/s estimator alone")
    return report


if __name__ == "__main__":
    main()
