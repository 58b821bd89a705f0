"""Landmark jitter against micro-expression motion, per clip: the measurement behind motion/driving.py's filter.

    python -m motion.jitter --clips CLIP_FOLDER [CLIP_FOLDER ...] --fps 200

Each folder holds a clip's frames (or an ``imgs/`` folder of them). Printed per clip, in pixels of the clip's
frames: the mean frame-to-frame landmark step after head-motion removal (mostly jitter: micro-expressions move a
landmark by far less than that per frame at 200 fps), the same step after the temporal filter, and each
region's peak displacement from the onset after the filter (the signal).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from media.images import list_images, load_rgb
from motion.canonical import remove_head_motion
from motion.driving import SMOOTH_MS, measure_landmarks, smooth_over_time

REGIONS = {"brows": (70, 63, 105, 66, 107, 336, 296, 334, 293, 300), "lids": (159, 145, 386, 374),
           "mouth corners": (61, 291), "lips": (13, 14, 0, 17), "chin": (152, 175, 199)}


def clip_jitter(landmarks: np.ndarray, fps: float, smooth_ms: float = SMOOTH_MS) -> dict[str, float]:
    still = remove_head_motion(landmarks)[:, :, :2]
    smooth = smooth_over_time(still, fps, smooth_ms)
    step = float(np.linalg.norm(np.diff(still, axis=0), axis=-1).mean())
    residual = float(np.linalg.norm(np.diff(smooth, axis=0), axis=-1).mean())
    row = {"frames": len(landmarks), "step_raw": step, "step_filtered": residual}
    moved = smooth - smooth[:1]
    for name, idx in REGIONS.items():
        row[name] = float(np.linalg.norm(moved[:, list(idx)], axis=-1).mean(1).max())
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion.jitter", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", required=True, help="clip folders (frames, or imgs/ inside)")
    parser.add_argument("--fps", type=float, required=True, help="the clips' frame rate")
    parser.add_argument("--smooth_ms", type=float, default=SMOOTH_MS, help="temporal filter's standard deviation")
    args = parser.parse_args(argv)
    from openface.landmarks import Landmarker

    with Landmarker(max_faces=1) as landmarker:
        for folder in map(Path, args.clips):
            frames_dir = folder / "imgs" if (folder / "imgs").is_dir() else folder
            paths = list(list_images(frames_dir).values())
            if len(paths) < 2:
                print(f"error: {frames_dir}: fewer than two frames", file=sys.stderr)
                return 2
            landmarks, found = measure_landmarks((load_rgb(p) for p in paths), landmarker)
            row = clip_jitter(landmarks[found], args.fps, args.smooth_ms)
            print(folder.name, " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
