"""Image quality and temporal stability outside the expression regions.

A micro-expression changes the brows, eyes, nose and mouth; everything else (forehead, cheeks, chin, hair,
background) should stay as the template has it and should not flicker. Frames are canonical 128 px crops
(``metrics.frames``); ``static`` masks are True outside the dilated expression regions (``metrics.motion``).
"""
from __future__ import annotations

import numpy as np

PSNR_CAP = 100.0  # dB for identical pixels (the mean squared error is 0): keeps JSON finite and means "ideal"
SSIM_SIGMA, SSIM_WINDOW = 1.5, 11  # the Gaussian window of Wang et al. (2004)
SSIM_K1, SSIM_K2, PIXEL_MAX = 0.01, 0.03, 255.0


def grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of (..., 3) uint8 as float64."""
    return np.asarray(rgb, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two grey images (float, 0..255) with a Gaussian window; 1 where they are identical."""
    import cv2

    def blur(x):
        return cv2.GaussianBlur(x, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = (SSIM_K1 * PIXEL_MAX) ** 2, (SSIM_K2 * PIXEL_MAX) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(ssim_map(a, b)[mask].mean())


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the masked pixels (all channels), capped at PSNR_CAP."""
    diff = np.asarray(a, np.float64)[mask] - np.asarray(b, np.float64)[mask]
    mse = float(np.mean(diff ** 2))
    if mse <= PIXEL_MAX ** 2 * 10 ** (-PSNR_CAP / 10):
        return PSNR_CAP
    return float(10 * np.log10(PIXEL_MAX ** 2 / mse))


def per_frame_ssim(frames_grey: np.ndarray, template_grey: np.ndarray | None, static: np.ndarray,
                   valid: np.ndarray) -> np.ndarray:
    out = np.full(len(frames_grey), np.nan)
    if template_grey is None:
        return out
    for t in np.flatnonzero(valid):
        out[t] = masked_ssim(frames_grey[t], template_grey, static)
    return out


def mean_masked_ssim(frames_grey: np.ndarray, template_grey: np.ndarray | None, static: np.ndarray,
                     valid: np.ndarray) -> float | None:
    """Mean over frames with a face of the SSIM against the template outside the expression regions."""
    values = per_frame_ssim(frames_grey, template_grey, static, valid)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def mean_masked_psnr(frames_rgb: np.ndarray, template_rgb: np.ndarray | None, static: np.ndarray,
                     valid: np.ndarray) -> float | None:
    if template_rgb is None or not valid.any():
        return None
    return float(np.mean([masked_psnr(frames_rgb[t], template_rgb, static) for t in np.flatnonzero(valid)]))


def static_change(frames_grey: np.ndarray, static: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T,) mean |frame t - frame t-1| (grey levels) outside the expression regions; NaN at t = 0 and where either
    frame has no face."""
    change = np.full(len(frames_grey), np.nan)
    for t in range(1, len(frames_grey)):
        if valid[t] and valid[t - 1]:
            change[t] = float(np.abs(frames_grey[t] - frames_grey[t - 1])[static].mean())
    return change


def flicker(generated_change: np.ndarray, source_change: np.ndarray | None = None) -> float | None:
    """Temporal flicker: mean over consecutive frame pairs of max(0, result change - source change), with the
    changes of ``static_change`` on one timeline. The source's own change (camera noise, slight head motion) is what
    the driving clip explains; only the excess counts. Without a source every change of the static area counts."""
    gen = np.asarray(generated_change, np.float64)
    src = np.zeros_like(gen) if source_change is None else np.asarray(source_change, np.float64)
    keep = np.isfinite(gen) & np.isfinite(src)
    if not keep.any():
        return None
    return float(np.maximum(0.0, gen[keep] - src[keep]).mean())
