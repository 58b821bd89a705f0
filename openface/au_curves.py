"""Where a micro-expression peaks in an AU curve: the apex as the frame of largest change from the onset.

Shared by ``--mode eval`` (``metrics.au``: the apex error between a result and its source) and the estimator's
calibration report (``openface.calibrate``: the apex of the estimated curves against the FACS-coded apex).
"""
from __future__ import annotations

import numpy as np

from catalog.au_schema import OPENFACE_AUS

NON_ME_AUS = ("AU45",)  # blinks accompany MEs but are not part of them (CASME II codes leave them out)
APEX_SMOOTHING = 3  # frames: a centred moving average keeps single-frame estimator jitter from being the apex


def expression_change(aus: np.ndarray, names=OPENFACE_AUS) -> np.ndarray:
    """(T,) summed |AU(t) - AU(first face frame)| over the ME AUs (blinks excluded), lightly smoothed; NaN where
    the frame has no face."""
    aus = np.asarray(aus, dtype=np.float64)
    valid = np.isfinite(aus).all(axis=1)
    change = np.full(len(aus), np.nan)
    if not valid.any():
        return change
    cols = [j for j, n in enumerate(names) if n not in NON_ME_AUS]
    onset = aus[np.argmax(valid), cols]
    change[valid] = np.abs(aus[valid][:, cols] - onset).sum(axis=1)
    return _nan_moving_average(change, APEX_SMOOTHING)


def _nan_moving_average(x: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(x) < window:
        return x
    half = window // 2
    out = np.full_like(x, np.nan)
    for t in np.flatnonzero(np.isfinite(x)):
        out[t] = np.nanmean(x[max(0, t - half):t + half + 1])
    return out


def apex_frame(aus: np.ndarray, names=OPENFACE_AUS) -> int | None:
    """The frame with the largest expression change from the first frame (``expression_change``)."""
    change = expression_change(aus, names)
    return int(np.nanargmax(change)) if np.isfinite(change).any() else None
