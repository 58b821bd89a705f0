"""Face frames for motion transfer: head motion removed in 3-D, and a canonical 2-D frame shared by all faces.

Two coordinate systems are used by the ``motion`` package:

- **Clip frame.** Every frame of a driving clip is mapped onto the clip's reference (onset) frame by a 3-D
  similarity (rotation, uniform scale, translation) fitted on landmarks that expressions do not move. What is left
  is facial movement; head turns, nods and drift are gone, out-of-plane rotation included (a 2-D fit would leave
  it in, and the warp would copy it as deformation).
- **Canonical frame.** A 2-D frame per face: origin at the midpoint of the outer eye corners (landmarks 33 and
  263), x axis from 33 to 263, y axis perpendicular to it and pointing down the face, unit = the 33-263 distance.
  Displacements expressed in it are comparable across faces, image sizes and in-plane rotations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # image left / image right on a frontal face

# Landmarks that facial expressions barely move: the nose bridge and tip, the eye corners, the temples and the
# upper face outline. The forehead centre is left out (AU1/AU2 move its skin), so are the lids, lips and jaw.
STABLE_POINTS = (
    168, 6, 197, 195, 5, 4, 1,  # nose bridge and tip
    33, 133, 362, 263,  # eye corners
    127, 162, 21, 54, 103, 356, 389, 251, 284, 332,  # temples and upper face outline
    234, 454, 93, 323,  # outline at the cheekbones
)


@dataclass(frozen=True)
class Similarity3D:
    """x -> scale * R @ x + t, for row vectors: ``apply`` returns ``scale * x @ R.T + t``."""

    scale: float
    rotation: np.ndarray  # (3, 3), proper rotation
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation


def fit_similarity_3d(src: np.ndarray, dst: np.ndarray) -> Similarity3D:
    """Least-squares 3-D similarity taking ``src`` (K, 3) onto ``dst`` (K, 3) (Umeyama's closed form)."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection fits better: take the best proper rotation
        flip[2, 2] = -1.0
    rotation = u @ flip @ vt
    variance = (s ** 2).sum() / len(src)
    scale = float((sigma * np.diag(flip)).sum() / variance)
    return Similarity3D(scale, rotation, dst_mean - scale * rotation @ src_mean)


def remove_head_motion(landmarks: np.ndarray, reference: np.ndarray | None = None,
                       points: tuple[int, ...] = STABLE_POINTS) -> np.ndarray:
    """(T, N, 3) landmarks of a clip -> the same, each frame mapped onto ``reference`` (N, 3; default: frame 0) by
    the 3-D similarity fitted on ``points``. A clip with head motion only comes out (nearly) still."""
    if landmarks.ndim != 3 or landmarks.shape[2] != 3:
        raise ValueError(f"expected (frames, points, 3) landmarks, got {landmarks.shape}")
    ref = landmarks[0] if reference is None else reference
    idx = list(points)
    out = np.empty_like(landmarks, dtype=np.float64)
    for t, frame in enumerate(landmarks):
        out[t] = fit_similarity_3d(frame[idx], ref[idx]).apply(frame)
    return out


@dataclass(frozen=True)
class CanonicalFrame:
    """The canonical 2-D frame of one face in pixel coordinates (see the module docstring)."""

    origin: np.ndarray  # (2,) pixels
    axes: np.ndarray  # (2, 2): rows are the unit x and y axes in pixel coordinates
    unit: float  # pixels per canonical unit (the outer-eye-corner distance)

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        """Pixel positions (..., 2 or 3) -> canonical positions (..., 2)."""
        return (points[..., :2] - self.origin) @ self.axes.T / self.unit

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Canonical positions (..., 2) -> pixel positions (..., 2)."""
        return points @ self.axes * self.unit + self.origin

    def vectors_to_canonical(self, vectors: np.ndarray) -> np.ndarray:
        """Pixel displacements (..., 2 or 3) -> canonical displacements (..., 2)."""
        return vectors[..., :2] @ self.axes.T / self.unit

    def vectors_to_pixels(self, vectors: np.ndarray) -> np.ndarray:
        """Canonical displacements (..., 2) -> pixel displacements (..., 2)."""
        return vectors @ self.axes * self.unit


def canonical_frame(landmarks: np.ndarray) -> CanonicalFrame:
    """The canonical frame of a face from its (478, 2 or 3) landmarks in pixels."""
    right, left = landmarks[RIGHT_EYE_OUTER, :2].astype(np.float64), landmarks[LEFT_EYE_OUTER, :2].astype(np.float64)
    span = left - right
    unit = float(np.hypot(*span))
    if unit < 1e-6:
        raise ValueError("degenerate face landmarks: the outer eye corners coincide")
    x_axis = span / unit
    y_axis = np.array([-x_axis[1], x_axis[0]])  # x rotated by +90 degrees: down the face in image coordinates
    return CanonicalFrame((right + left) / 2, np.stack([x_axis, y_axis]), unit)
