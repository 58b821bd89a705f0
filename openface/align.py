"""One canonical similarity alignment for training data, templates and driving clips, and its inverse.

The transform is fitted (least squares, rotation + uniform scale + translation) on landmarks that do not move with
facial expressions: eye corners and the nose. Using the mouth, as some aligners do, would shift the whole crop
whenever the mouth opens or smiles and turn expression into head motion. The canonical positions are the mean
positions of those landmarks in the OpenFace-aligned 128 px crops of the MEGC2021 package, made left-right
symmetric, so the toolkit's crops look like OpenFace's (and like the seeds' training data).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Landmark index -> canonical (x, y) in a unit square crop.
CANONICAL = {
    33: (0.2275, 0.309), 133: (0.3894, 0.3225), 362: (0.6106, 0.3225), 263: (0.7725, 0.309),  # eye corners
    168: (0.5, 0.2975), 6: (0.5, 0.3476), 197: (0.5, 0.391), 195: (0.5, 0.4302),  # nose bridge
    5: (0.5, 0.4724), 4: (0.5, 0.5223), 1: (0.5, 0.5581), 98: (0.397, 0.579), 327: (0.603, 0.579),  # nose tip, wings
}
RIGID_INDICES = tuple(CANONICAL)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M minimising sum |M [src;1] - dst|^2 over rotations, uniform scales and translations."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    # Closed form for a 2D similarity: [a -b; b a] from sums of dot and cross products.
    denom = (s ** 2).sum()
    a = (s * d).sum() / denom
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / denom
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (dst_mean - rot @ src_mean)[:, None]])


def canonical_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 matrix taking image coordinates to the canonical size x size crop."""
    return similarity_transform(landmarks[list(RIGID_INDICES), :2], np.array(list(CANONICAL.values())) * size)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points[:, :2] @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0, 0, 1]])
    return np.linalg.inv(full)[:2]


@dataclass
class Crop:
    """An aligned crop and what is needed to put it back: the 2x3 matrix original -> crop."""

    image: np.ndarray  # (size, size, 3) uint8
    matrix: np.ndarray  # (2, 3)
    source_size: tuple[int, int]  # (width, height) of the original image

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def to_dict(self) -> dict:
        return {"matrix": self.matrix.round(6).tolist(), "source_size": list(self.source_size), "size": self.size}


def align_face(rgb: np.ndarray, landmarks: np.ndarray, size: int = 128) -> Crop:
    """Warp the face to the canonical layout at size x size (bicubic, borders replicated)."""
    import cv2

    m = canonical_matrix(landmarks, size)
    crop = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return Crop(crop, m, (rgb.shape[1], rgb.shape[0]))


def paste_back(original: np.ndarray, crop: np.ndarray, matrix: np.ndarray, aligned_size: int,
               feather: float = 0.08) -> np.ndarray:
    """Put a (generated) crop back into the original photo with a feathered elliptical mask (N2ME --keep_size).

    ``matrix`` maps the original to a crop of ``aligned_size``; ``crop`` may be larger or smaller (e.g. written at
    256 px from a 128 px alignment): the matrix is rescaled to it."""
    import cv2

    size = crop.shape[0]
    h, w = original.shape[:2]
    inverse = invert_affine(matrix * (size / aligned_size))
    warped = cv2.warpAffine(crop, inverse, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    mask = _feathered_mask(size, feather)
    mask_back = cv2.warpAffine(mask, inverse, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    blended = warped.astype(np.float32) * mask_back + original.astype(np.float32) * (1 - mask_back)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def _feathered_mask(size: int, feather: float) -> np.ndarray:
    """1 inside an ellipse covering the face, falling smoothly to 0 at the crop border."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    r = np.sqrt(((xx - 0.5) / 0.47) ** 2 + ((yy - 0.52) / 0.5) ** 2)
    return np.clip((1.0 - r) / feather, 0.0, 1.0).astype(np.float32)
