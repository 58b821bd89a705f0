"""How closely OpenFace's per-frame AU curves can be followed at all, and what else they follow.

The calibration reference is OpenFace 2's static, per-frame output on micro-expression clips. Three views of it,
reported by ``python -m openface.calibrate`` beside the estimator's agreement:

- ``noise_ceiling``: if OpenFace's curve is signal plus white frame-to-frame noise, its lag-1 autocorrelation is
  the signal's share of the variance, and a perfect estimate of the signal correlates with the curve at its
  square root.
- ``smooth_ceiling``: what a smooth estimate reaches when it is OpenFace's own curve, averaged over the
  neighbouring frames (the frame itself left out, so its own noise is not counted) with the estimator's
  smoothing window. No estimate that measures the face, rather than OpenFace's noise, should expect more.
- ``gaze_following``: within-clip r of OpenFace's curve with the eyes' horizontal gaze (MediaPipe's eyeLookIn /
  eyeLookOut blendshapes). In the MEGC2021 clips OpenFace's AU17 rises as the eyes turn to the subject's left,
  with the same sign in all six clips, while no measure of the chin follows it: part of what the reference
  moves is not the AU. Gaze also shifts during real expressions (SAMM_Negative's disgust moves AU07 and AU09
  with it), so the column is a diagnostic, not a correction to apply.
"""
from __future__ import annotations

import numpy as np

from catalog.au_schema import OPENFACE_AUS

MIN_RANGE = 0.1  # the same "moves" as metrics.au.MIN_SOURCE_RANGE
FISHER_CLIP = 1.0 - 1e-7  # r = +-1 would give an infinite z


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """r, or 0 when either curve is flat (no linear relation: a frozen estimate must not be left out)."""
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def fisher_mean(rs, empty: float | None = float("nan")) -> float | None:
    """Mean of correlations through Fisher's z (arctanh), as N2ME averages its per-AU correlations; ``empty`` when
    no finite r is given (the metrics report None, the calibration tables NaN)."""
    values = [r for r in rs if r is not None and np.isfinite(r)]
    if not values:
        return empty
    return float(np.tanh(np.mean(np.arctanh(np.clip(values, -FISHER_CLIP, FISHER_CLIP)))))


def horizontal_gaze(blendshapes: dict[str, float]) -> float:
    """Towards the subject's left > 0: the left eye looks out while the right eye looks in."""
    def get(name: str) -> float:
        return blendshapes.get(name, 0.0)

    return 0.5 * ((get("eyeLookOutLeft") - get("eyeLookInLeft")) + (get("eyeLookInRight") - get("eyeLookOutRight")))


def per_au(openface_curves: list[np.ndarray], score) -> dict:
    """Per AU the Fisher mean of ``score(clip index, AU column)`` over the clips where OpenFace's curve moves,
    and the Fisher mean over AUs."""
    out = {}
    for j, au in enumerate(OPENFACE_AUS):
        rs = [score(i, j) for i, curve in enumerate(openface_curves) if np.ptp(curve[:, j]) >= MIN_RANGE]
        if rs:
            out[au] = fisher_mean(rs)
    return {"per_au": out, "fisher_over_aus": fisher_mean(list(out.values()))}


def noise_ceiling(openface_curves: list[np.ndarray]) -> dict:
    def score(i: int, j: int) -> float:
        y = openface_curves[i][:, j]
        return float(np.sqrt(max(0.0, pearson(y[1:], y[:-1]))))

    return per_au(openface_curves, score)


def neighbour_average(y: np.ndarray, window: int) -> np.ndarray:
    """Mean of the ``window - 1`` frames around each frame, the frame itself left out (edges padded)."""
    half = max(1, window // 2)
    padded = np.concatenate([np.repeat(y[:1], half), y, np.repeat(y[-1:], half)])
    total = np.convolve(padded, np.ones(2 * half + 1), mode="valid")
    return (total - y) / (2 * half)


def smooth_ceiling(openface_curves: list[np.ndarray], window: int) -> dict:
    def score(i: int, j: int) -> float:
        y = openface_curves[i][:, j]
        return pearson(neighbour_average(y, window), y)

    return per_au(openface_curves, score)


def gaze_following(openface_curves: list[np.ndarray], gazes: list[np.ndarray], window: int) -> dict:
    """Signed: a consistent sign over the clips shows a real dependence, not chance."""
    from openface.au_sequence import smooth

    def score(i: int, j: int) -> float:
        return pearson(smooth(gazes[i][:, None], window)[:, 0], openface_curves[i][:, j])

    return per_au(openface_curves, score)
