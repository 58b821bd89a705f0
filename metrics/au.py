"""AU fidelity: does the result move the same Action Units, as much and at the same time, as the source clip?

AU curves are (T, n) arrays of raw 0..5 intensities in the order of ``names`` (OpenFace's 17 AUs by default). A row
of NaN is a frame where no face was found: it is left out of every comparison. Source and result curves handed to
these functions are already on one timeline (``metrics.timeline``).
"""
from __future__ import annotations

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from openface.au_curves import NON_ME_AUS, apex_frame, expression_change  # noqa: F401 (part of this module's API)
from openface.reference_limits import fisher_mean

MIN_SOURCE_RANGE = 0.1  # an AU whose source curve spans less than this (0..5 scale) does not move: r is meaningless
FACS_RISE = 0.25  # a coded AU "moves" when it rises this much above the first frame (about the estimator's noise)


def pearson_r(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson r over the positions where both are finite; None when fewer than 3 or either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return None
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    if denom <= 1e-12:
        return None
    return float(np.clip((x * y).sum() / denom, -1.0, 1.0))


def moving_aus(source: np.ndarray, min_range: float = MIN_SOURCE_RANGE) -> list[int]:
    """Columns whose source curve spans at least ``min_range`` (NaN frames ignored)."""
    span = np.nanmax(source, axis=0) - np.nanmin(source, axis=0) if np.isfinite(source).any() else []
    return [j for j, s in enumerate(span) if np.isfinite(s) and s >= min_range]


def per_au_correlation(source: np.ndarray, generated: np.ndarray, names=OPENFACE_AUS,
                       min_range: float = MIN_SOURCE_RANGE) -> dict[str, float]:
    """AU name -> r for every AU that moves in the source. A result curve that stays flat while the source moves
    counts as r = 0 (no linear relation), not as missing: a frozen result must score badly."""
    out = {}
    both = np.isfinite(source).all(axis=1) & np.isfinite(generated).all(axis=1)
    if both.sum() < 3:  # too few frames with a face on both sides: nothing to correlate
        return out
    for j in moving_aus(source, min_range):
        r = pearson_r(source[:, j], generated[:, j])
        if r is None and np.ptp(generated[both, j]) <= 1e-9:
            r = 0.0
        if r is not None:
            out[names[j]] = r
    return out


def au_correlation(source: np.ndarray, generated: np.ndarray, names=OPENFACE_AUS,
                   min_range: float = MIN_SOURCE_RANGE) -> float | None:
    """Fisher-z mean of the per-AU Pearson r (``per_au_correlation``); None when no AU moves in the source."""
    return fisher_mean(per_au_correlation(source, generated, names, min_range).values(), empty=None)


def au_mae(driven: np.ndarray, generated: np.ndarray) -> float | None:
    """Mean |generated - driven| over all AUs and frames where both are finite."""
    diff = np.abs(np.asarray(generated, dtype=np.float64) - np.asarray(driven, dtype=np.float64))
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if diff.size else None


def apex_error_frames(source_apex: int | None, generated_apex: int | None, source_len: int,
                      generated_len: int) -> float | None:
    """|apex difference| in source frames; clips of different lengths are compared on normalised time (both are
    taken to span the same onset..offset)."""
    if source_apex is None or generated_apex is None:
        return None
    if source_len == generated_len:
        return float(abs(generated_apex - source_apex))
    t_src = source_apex / max(1, source_len - 1)
    t_gen = generated_apex / max(1, generated_len - 1)
    return float(abs(t_gen - t_src) * max(1, source_len - 1))


def apex_error_ms(source_apex: int | None, generated_apex: int | None, source_len: int, generated_len: int,
                  fps: float | None) -> float | None:
    frames = apex_error_frames(source_apex, generated_apex, source_len, generated_len)
    if frames is None or not fps:
        return None
    return frames / fps * 1000.0


def au_name(number: int) -> str:
    return f"AU{number:02d}"


def facs_moves(coded: list[int], aus: np.ndarray, names=OPENFACE_AUS, rise: float = FACS_RISE) -> dict[str, bool]:
    """For each coded AU the estimator measures: does it rise by ``rise`` above the first face frame?"""
    aus = np.asarray(aus, dtype=np.float64)
    valid = np.isfinite(aus).all(axis=1)
    moves = {}
    for number in sorted(set(coded)):
        name = au_name(number)
        if name not in names or not valid.any():
            continue
        j = names.index(name)
        curve = aus[valid, j]
        moves[name] = bool(curve.max() - curve[0] >= rise)
    return moves


def facs_recall(coded: list[int], aus: np.ndarray, names=OPENFACE_AUS, rise: float = FACS_RISE) -> float | None:
    """Share of the measurable coded AUs that move (``facs_moves``); None when none of them is measurable."""
    moves = facs_moves(coded, aus, names, rise)
    return float(np.mean(list(moves.values()))) if moves else None


def unmeasured_codes(coded: list[int], names=OPENFACE_AUS) -> list[str]:
    """Coded AUs the estimator has no channel for (AU18, AU24, AU43 ...): reported, never counted."""
    return [au_name(n) for n in sorted(set(coded)) if au_name(n) not in names]
