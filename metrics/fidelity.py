"""What the motion and identity metrics miss: is the onset frame still the template, and does the result paint
things the template's face does not have?

- ``onset_fidelity``: SSIM between the result's onset frame and the template *inside* the expression regions.
  ``ssim_static`` looks only outside them and dlib's identity descriptor forgives wrinkles, so a result whose
  first frame already carries the driving person's frown lines (absolute AU driving leaks the source's resting
  AUs onto the template) passes both; here it scores below a result whose onset is the template.
- ``artifact_rate``: share of expression-region pixels, averaged over frames, whose grey level lies more than
  ``ARTIFACT_LEVELS`` outside the range of the template's own pixels within ``NEIGHBOURHOOD`` px. A real
  expression moves the face's texture by a few pixels, so its values stay within that local range; a white
  streak painted over a dark eyebrow, or a colour blotch, does not. Each frame's global grey offset against the
  template (the median difference outside the expression regions) is removed first, so a uniform tone shift is
  not counted.
All inputs are the evaluator's canonical 128 px crops (``metrics.analysis``).
"""
from __future__ import annotations

import numpy as np

from metrics import quality

ARTIFACT_LEVELS = 30.0  # grey levels beyond the local template range: well above JPEG noise and tone drift
NEIGHBOURHOOD = 7  # px at 128 px: lets features move up to 3 px (a micro-expression's motion) without counting


def onset_fidelity(frames_grey: np.ndarray, template_grey: np.ndarray | None, expression: np.ndarray,
                   valid: np.ndarray) -> float | None:
    """SSIM of the first frame with a face against the template, over the expression regions."""
    if template_grey is None or not valid.any() or not expression.any():
        return None
    onset = int(np.argmax(valid))
    return quality.masked_ssim(frames_grey[onset], template_grey, expression)


def local_range(template_grey: np.ndarray, size: int = NEIGHBOURHOOD) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel min and max of the template within a size x size window."""
    import cv2

    kernel = np.ones((size, size), np.uint8)
    t = template_grey.astype(np.float32)
    return cv2.erode(t, kernel).astype(np.float64), cv2.dilate(t, kernel).astype(np.float64)


def artifact_map(frame_grey: np.ndarray, lo: np.ndarray, hi: np.ndarray, template_grey: np.ndarray,
                 static: np.ndarray) -> np.ndarray:
    """Grey levels by which each pixel of the (offset-corrected) frame falls outside the template's local range."""
    offset = float(np.median(frame_grey[static] - template_grey[static])) if static.any() else 0.0
    f = frame_grey - offset
    return np.maximum(f - hi, 0.0) + np.maximum(lo - f, 0.0)


def per_frame_artifacts(frames_grey: np.ndarray, template_grey: np.ndarray, expression: np.ndarray,
                        valid: np.ndarray, static: np.ndarray | None = None) -> np.ndarray:
    """(T,) share of expression-region pixels beyond ``ARTIFACT_LEVELS``; NaN for frames without a face."""
    lo, hi = local_range(template_grey)
    static = ~expression if static is None else static
    out = np.full(len(frames_grey), np.nan)
    for t in np.flatnonzero(valid):
        beyond = artifact_map(frames_grey[t], lo, hi, template_grey, static)
        out[t] = float((beyond[expression] > ARTIFACT_LEVELS).mean())
    return out


def artifact_rate(frames_grey: np.ndarray, template_grey: np.ndarray | None, expression: np.ndarray,
                  valid: np.ndarray) -> float | None:
    if template_grey is None or not valid.any() or not expression.any():
        return None
    return float(np.nanmean(per_frame_artifacts(frames_grey, template_grey, expression, valid)))
