"""Retargeting: a displacement measured on one face, mapped onto another face's geometry, locally.

Both faces are in canonical units (motion/canonical.py), so the outer-eye-corner distance and the eye line already
match. What remains differs region by region: a narrow mouth, a high forehead, close-set brows. For every landmark
the spread of its neighbourhood (its nearest landmarks, as offsets from it) is compared between the two faces along
x and along y; the ratio of the spreads scales the displacement there. A full 2x2 least-squares map per landmark was
tried first: where the two faces' correspondence is uneven (a mouth narrower than its cheeks) it flipped signs and
sent a smile the wrong way; spread ratios are positive by construction, so motion always keeps its direction.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

NEIGHBOURS = 12  # landmarks of the local neighbourhood (the mesh's one- and two-ring are about this size)
IDENTITY_PULL = 0.1  # weight of the identity (ratio 1), relative to the neighbourhood's spread
MAX_GAIN = 2.5  # no local ratio beyond 1/2.5 .. 2.5 (a guard against degenerate neighbourhoods)


def local_scales(source: np.ndarray, target: np.ndarray, neighbours: int = NEIGHBOURS,
                 pull: float = IDENTITY_PULL) -> np.ndarray:
    """(N, 2) per-landmark x and y scale factors: sqrt((sum_j dt^2 + lam) / (sum_j ds^2 + lam)) over the
    ``neighbours`` nearest landmarks j of i on the source shape, per axis; lam = pull x the neighbourhood's mean
    squared offset, so a neighbourhood with no extent along an axis (closed lips) scales by about 1 there."""
    if source.shape != target.shape or source.shape[1] != 2:
        raise ValueError(f"retargeting needs two (N, 2) shapes, got {source.shape} and {target.shape}")
    k = min(neighbours + 1, len(source))
    _, idx = cKDTree(source).query(source, k=k)
    ds = ((source[idx[:, 1:]] - source[:, None]) ** 2).sum(1)  # (N, 2): per-axis spread of the source
    dt = ((target[idx[:, 1:]] - target[:, None]) ** 2).sum(1)
    lam = pull * (ds.sum(1, keepdims=True) + dt.sum(1, keepdims=True)) / 2
    return np.clip(np.sqrt((dt + lam) / (ds + lam)), 1 / MAX_GAIN, MAX_GAIN)


def retarget(displacements: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(T, N, 2) displacements on the ``source`` shape (N, 2) -> the same motion on the ``target`` shape."""
    return displacements * local_scales(source, target)[None]
