"""Putting a source clip and a result of different lengths on one timeline.

Both are taken to span the same onset..offset interval (a generator renders one output frame per driving frame,
possibly at another frame rate or subsampled), so frame i of T maps to normalised time i / (T - 1). Source curves are
resampled onto the result's frames by linear interpolation; a resampled point whose nearest original frame had no
face stays NaN, so excluded frames stay excluded.
"""
from __future__ import annotations

import numpy as np


def normalised_time(length: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, length) if length > 1 else np.zeros(length)


def resample(curve: np.ndarray, length: int) -> np.ndarray:
    """(T, ...) -> (length, ...) on normalised time; unchanged when T == length."""
    curve = np.asarray(curve, dtype=np.float64)
    if len(curve) == length:
        return curve
    flat = curve.reshape(len(curve), -1)
    src_t, dst_t = normalised_time(len(curve)), normalised_time(length)
    out = np.full((length, flat.shape[1]), np.nan)
    nearest = np.clip(np.round(dst_t * (len(curve) - 1)).astype(int), 0, len(curve) - 1)
    for j in range(flat.shape[1]):
        ok = np.isfinite(flat[:, j])
        if ok.sum() == 0:
            continue
        values = np.interp(dst_t, src_t[ok], flat[ok, j]) if ok.sum() > 1 else np.full(length, flat[ok, j][0])
        values[~ok[nearest]] = np.nan
        out[:, j] = values
    return out.reshape((length,) + curve.shape[1:])


def resample_profiles(profiles: dict[str, np.ndarray], length: int) -> dict[str, np.ndarray]:
    return {k: resample(v, length) for k, v in profiles.items()}


def alignment_note(source_len: int, result_len: int) -> str | None:
    if source_len == result_len:
        return None
    return (f"lengths differ (source {source_len} frames, result {result_len}): source curves resampled onto the "
            f"result's frames by normalised time (both taken to span onset..offset)")
