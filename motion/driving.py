"""Facial motion of a driving clip: landmarks per frame, head motion removed, denoised, relative to the onset.

Measured on the six MEGC2021 clips (128 px, 200 fps; ``python -m motion.jitter --megc_root ...`` prints it):
MediaPipe's landmarks jitter by 0.13-0.20 px from frame to frame after head-motion removal, while the
micro-expressions move regions by 0.1-2.5 px at their peak. Micro-expression onsets take 40-250 ms, so a Gaussian
filter over time with a standard deviation of 25 ms (5 frames at 200 fps) removes about three quarters of the jitter
(white noise shrinks by sqrt(2 sqrt(pi) sigma)) while keeping the rise of even the fastest onsets.
The onset reference is the mean of the first ``ONSET_MS`` of the smoothed clip, so its own noise does not become a
constant offset on every frame.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from motion.canonical import CanonicalFrame, canonical_frame, remove_head_motion

log = logging.getLogger(__name__)

SMOOTH_MS = 25.0  # temporal Gaussian's standard deviation (see the module docstring)
ONSET_MS = 15.0  # the onset reference: the mean of the clip's first 15 ms (3 frames at 200 fps, at least 1)
MAX_LOST_SHARE = 0.2  # frames without a face are filled from their neighbours up to this share of the clip


class FaceLostError(ValueError):
    """Too many frames of a driving clip have no detectable face to fill them from their neighbours."""


@dataclass
class ClipMotion:
    """A driving clip's facial motion in the canonical frame of its onset face."""

    displacements: np.ndarray  # (T, N, 2) canonical units, relative to the onset shape; frame 0 of the clip ~ 0
    onset_shape: np.ndarray  # (N, 2) canonical positions of the onset face
    fps: float
    filled_frames: list[int] = field(default_factory=list)  # frames whose face was lost and interpolated
    smooth_ms: float = SMOOTH_MS

    @property
    def frames(self) -> int:
        return len(self.displacements)


def fill_lost_frames(landmarks: np.ndarray, found: np.ndarray, clip: str,
                     max_share: float = MAX_LOST_SHARE) -> tuple[np.ndarray, list[int]]:
    """Landmarks of frames where no face was found, linearly interpolated from the nearest frames that have one
    (held at the ends). More than ``max_share`` lost is an error naming the frames."""
    lost = [int(i) for i in np.flatnonzero(~found)]
    if not lost:
        return landmarks, []
    if len(lost) > max_share * len(found) or not found.any():
        shown = ", ".join(str(i) for i in lost[:20]) + (" ..." if len(lost) > 20 else "")
        raise FaceLostError(f"{clip}: no face found in {len(lost)} of {len(found)} frames ({shown}); at most "
                            f"{max_share:.0%} can be filled from neighbouring frames: check those frames or crop "
                            f"the clip")
    t, good = np.arange(len(found)), np.flatnonzero(found)
    flat = landmarks.reshape(len(found), -1)
    filled = np.stack([np.interp(t, good, flat[good, k]) for k in range(flat.shape[1])], axis=1)
    filled = filled.reshape(landmarks.shape)
    log.warning("%s: no face in %d frame(s) (%s); filled from their neighbours", clip, len(lost),
                ", ".join(map(str, lost[:20])))
    return filled, lost


def smooth_over_time(series: np.ndarray, fps: float, smooth_ms: float = SMOOTH_MS) -> np.ndarray:
    """Gaussian filter along axis 0 with a standard deviation of ``smooth_ms`` (in frames at ``fps``)."""
    sigma = smooth_ms / 1000.0 * fps
    if sigma < 0.3 or len(series) < 2:  # below a third of a frame the kernel is a delta: nothing to do
        return series.copy()
    return gaussian_filter1d(series, sigma, axis=0, mode="nearest")


def clip_motion(landmarks: np.ndarray, fps: float, found: np.ndarray | None = None, clip: str = "clip",
                smooth_ms: float = SMOOTH_MS) -> ClipMotion:
    """(T, N, 3) landmarks in pixels of a driving clip -> its facial motion (see the module docstring)."""
    if fps <= 0 or not np.isfinite(fps):
        raise ValueError(f"{clip}: the frame rate must be a positive number, got {fps}")
    found = np.ones(len(landmarks), bool) if found is None else found
    landmarks, filled = fill_lost_frames(np.asarray(landmarks, np.float64), found, clip)
    still = remove_head_motion(landmarks)
    smooth = smooth_over_time(still[:, :, :2], fps, smooth_ms)
    onset_frames = max(1, int(round(ONSET_MS / 1000.0 * fps)))
    onset = smooth[:onset_frames].mean(0)
    frame: CanonicalFrame = canonical_frame(onset)
    return ClipMotion(frame.vectors_to_canonical(smooth - onset), frame.to_canonical(onset), fps, filled, smooth_ms)


def measure_landmarks(images, landmarker) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (T, 478, 3) of the largest face in each RGB image, and which frames had a face (T,)."""
    points, found = [], []
    for rgb in images:
        faces = landmarker.detect(rgb)
        found.append(bool(faces))
        points.append(faces[0].landmarks if faces else np.zeros((478, 3)))
    return np.stack(points), np.array(found, bool)
