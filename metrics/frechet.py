"""Fréchet distance between two sets of feature vectors (the formula of FID, on any features).

The toolkit uses dlib's 128-d face descriptors of the real (source) frames and of the generated frames
("FD-dlib128"): a learned face feature that is installed offline. It is NOT Inception FID and its values are not
comparable with published FIDs. With few frames the covariances are poorly estimated and the distance is biased
upwards, so compare systems on the same pairs; the batch value pools every pair's frames.
"""
from __future__ import annotations

import numpy as np


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(real: np.ndarray, generated: np.ndarray) -> float | None:
    """|mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2) over rows of (N, d) arrays.

    The trace of the matrix square root is taken from the eigenvalues of the symmetric form, which is exact for
    covariance matrices and needs no scipy. Rows with NaN are dropped; None when a set has fewer than 2 rows."""
    real = _finite_rows(real)
    generated = _finite_rows(generated)
    if len(real) < 2 or len(generated) < 2:
        return None
    mu_r, mu_g = real.mean(axis=0), generated.mean(axis=0)
    cov_r, cov_g = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    root_r = _psd_sqrt(cov_r)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_r @ cov_g @ root_r), 0.0, None)).sum()
    distance = float(((mu_r - mu_g) ** 2).sum() + np.trace(cov_r) + np.trace(cov_g) - 2.0 * cross)
    return max(0.0, distance)  # rounding can leave -1e-17 for identical sets


def _finite_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    return x[np.isfinite(x).all(axis=1)]
