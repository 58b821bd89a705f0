"""Motion: optical flow and optical strain from the onset frame to every frame, per facial region.

Everything runs on canonical 128 px crops (``metrics.frames``), so source and result regions are comparable in size.
Flow is computed from the onset (first face) frame to each frame t, as ME analysis does: the profile of a region
over time is the mean flow magnitude (or strain magnitude) inside it. Source and result profiles are compared by
Pearson r per region (brows, eyes, nose, mouth), averaged through Fisher z.

Flow algorithm: Farneback (OpenCV) by default: about 7 ms per 128 px frame pair on one CPU core, against about
480 ms for TV-L1 (``cv2.optflow.DualTVL1OpticalFlow``, what N2ME uses), which ``method="tvl1"`` selects.
Region-averaged profiles from the two agree closely; TV-L1 resolves finer per-pixel detail.
"""
from __future__ import annotations

import numpy as np

from metrics.au import pearson_r
from openface.reference_limits import fisher_mean

# MediaPipe Face Mesh (478 points) outlines of each region; both sides in one region (MEs are often one-sided, the
# region mean still rises). Indices from the mesh's published eyebrow, eye, lip contours and nose landmarks.
REGION_LANDMARKS: dict[str, tuple[tuple[int, ...], ...]] = {
    "brows": ((46, 53, 52, 65, 55, 70, 63, 105, 66, 107), (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)),
    "eyes": ((33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
             (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)),
    "nose": ((168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 64, 294, 48, 278, 129, 358, 102, 331),),
    "mouth": ((61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185),),
}
# Margin around each outline, as a fraction of the crop size: brows and mouth pull the skin around them.
REGION_MARGIN = {"brows": 0.055, "eyes": 0.04, "nose": 0.03, "mouth": 0.055}
REGIONS = tuple(REGION_LANDMARKS)
# The face outline (mesh silhouette): the skin inside it but outside the regions moves only with the head.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
FLAT_PX = 1e-3  # a profile spanning less than this does not move (flow of identical frames is ~1e-6, not 0)
MIN_SOURCE_PEAK_PX = 0.05  # below this the source region does not move: its amplitude ratio is meaningless
FLOW_METHODS = ("farneback", "tvl1")


# ---------------------------------------------------------------------------------------- regions

def region_masks(landmarks: np.ndarray, size: int, regions: dict | None = None,
                 margins: dict | None = None) -> dict[str, np.ndarray]:
    """Region name -> (size, size) bool mask: convex hull of each outline, dilated by the region's margin (a
    fraction of ``size``). Default: the motion regions (``REGION_LANDMARKS``, ``REGION_MARGIN``)."""
    import cv2

    regions = REGION_LANDMARKS if regions is None else regions
    margins = REGION_MARGIN if margins is None else margins
    masks = {}
    for region, outlines in regions.items():
        mask = np.zeros((size, size), np.uint8)
        for outline in outlines:
            hull = cv2.convexHull(np.round(landmarks[list(outline), :2]).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 1)
        radius = max(1, int(round(margins[region] * size)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        masks[region] = cv2.dilate(mask, kernel).astype(bool)
    return masks


def expression_mask(masks: dict[str, np.ndarray]) -> np.ndarray:
    """Union of the regions: where a micro-expression is allowed to change the face."""
    return np.logical_or.reduce(list(masks.values()))


def head_mask(landmarks: np.ndarray, size: int, masks: dict[str, np.ndarray]) -> np.ndarray:
    """Skin inside the face outline and outside the expression regions: it moves with the head only."""
    import cv2

    oval = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(oval, cv2.convexHull(np.round(landmarks[list(FACE_OVAL), :2]).astype(np.int32)), 1)
    return oval.astype(bool) & ~expression_mask(masks)


# ---------------------------------------------------------------------------------------- flow and strain

def optical_flow(first: np.ndarray, second: np.ndarray, method: str = "farneback") -> np.ndarray:
    """(H, W, 2) flow (dx, dy) in pixels taking grey uint8 ``first`` to ``second``."""
    import cv2

    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(first, second, None, pyr_scale=0.5, levels=3, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create().calc(first, second, None)
    raise ValueError(f"unknown flow method {method!r}; known: {', '.join(FLOW_METHODS)}")


def remove_flow_head_motion(flow: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Subtract the similarity motion (shift, rotation, scale) fitted by least squares to the flow on ``reference``
    (``head_mask``). Real clips drift and nod by a pixel or two over a second, more than a micro-expression moves;
    a generator driven by AUs renders no head motion, so comparing raw flows would score the drift."""
    if reference is None or reference.sum() < 20:
        return flow
    ys, xs = np.nonzero(reference)
    u, v = flow[ys, xs, 0], flow[ys, xs, 1]
    # displacement = [[a, -b], [b, a]] @ (x, y) + (tx, ty): linear in (a, b, tx, ty)
    ones, zeros = np.ones_like(xs, float), np.zeros_like(xs, float)
    design = np.vstack([np.column_stack([xs, -ys, ones, zeros]), np.column_stack([ys, xs, zeros, ones])])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([u, v]), rcond=None)
    gy, gx = np.mgrid[0:flow.shape[0], 0:flow.shape[1]].astype(np.float64)
    fitted = np.stack([a * gx - b * gy + tx, b * gx + a * gy + ty], axis=-1)
    return (flow - fitted).astype(np.float32)


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    return np.hypot(flow[..., 0], flow[..., 1])


def strain_magnitude(flow: np.ndarray) -> np.ndarray:
    """Frobenius norm of the infinitesimal strain tensor e = (grad u + grad u^T) / 2:
    sqrt(exx^2 + eyy^2 + 2 exy^2). High where skin stretches or compresses, zero for rigid shifts."""
    du_dy, du_dx = np.gradient(flow[..., 0])
    dv_dy, dv_dx = np.gradient(flow[..., 1])
    exy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx ** 2 + dv_dy ** 2 + 2 * exy ** 2)


def region_means(field: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    return {region: float(field[mask].mean()) if mask.any() else float("nan") for region, mask in masks.items()}


def region_profiles(grey: np.ndarray, valid: np.ndarray, masks: dict[str, np.ndarray],
                    method: str = "farneback", reference: np.ndarray | None = None) -> dict:
    """Flow/strain profiles of a grey crop sequence (T, H, W) from its first valid frame, head motion removed
    (``remove_flow_head_motion`` on ``reference``).

    Returns {"flow": {region: (T,)}, "strain": {region: (T,)}, "onset": index, "magnitude": (T, H, W) float32};
    frames without a face are NaN."""
    t_count = len(grey)
    flow_p = {r: np.full(t_count, np.nan) for r in masks}
    strain_p = {r: np.full(t_count, np.nan) for r in masks}
    magnitude = np.zeros(grey.shape, np.float32)
    if not valid.any():
        return {"flow": flow_p, "strain": strain_p, "onset": None, "magnitude": magnitude}
    onset = int(np.argmax(valid))
    for t in np.flatnonzero(valid):
        if t == onset:
            flow = np.zeros(grey.shape[1:] + (2,), np.float32)
        else:
            flow = remove_flow_head_motion(optical_flow(grey[onset], grey[t], method), reference)
        magnitude[t] = flow_magnitude(flow)
        for region, value in region_means(magnitude[t], masks).items():
            flow_p[region][t] = value
        for region, value in region_means(strain_magnitude(flow), masks).items():
            strain_p[region][t] = value
    return {"flow": flow_p, "strain": strain_p, "onset": onset, "magnitude": magnitude}


# ---------------------------------------------------------------------------------------- metrics (pure)

def _span(profile: np.ndarray) -> float:
    return float(np.nanmax(profile) - np.nanmin(profile)) if np.isfinite(profile).any() else 0.0


def per_region_correlation(source: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> dict[str, float]:
    """Region -> Pearson r of the two profiles (same timeline). A flat result profile against a moving source is
    r = 0 (a frozen result must score badly); a flat source profile gives no value."""
    out = {}
    for region, src in source.items():
        gen = generated.get(region)
        if gen is None or _span(src) < FLAT_PX:
            continue
        r = 0.0 if _span(gen) < FLAT_PX else pearson_r(src, gen)
        if r is not None:
            out[region] = r
    return out


def profile_correlation(source: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> float | None:
    return fisher_mean(per_region_correlation(source, generated).values(), empty=None)


def per_region_log_ratio(source: dict[str, np.ndarray], generated: dict[str, np.ndarray],
                         min_peak: float = MIN_SOURCE_PEAK_PX) -> dict[str, float]:
    """Region -> ln(result peak / source peak) for regions where the source moves at least ``min_peak`` px."""
    out = {}
    for region, src in source.items():
        gen = generated.get(region)
        if gen is None or not np.isfinite(src).any() or not np.isfinite(gen).any():
            continue
        peak_src, peak_gen = np.nanmax(src), np.nanmax(gen)
        if peak_src >= min_peak:
            out[region] = float(np.log(max(peak_gen, 1e-3) / peak_src))
    return out


def amplitude_log_ratio(source: dict[str, np.ndarray], generated: dict[str, np.ndarray],
                        min_peak: float = MIN_SOURCE_PEAK_PX) -> float | None:
    """Mean |ln(result peak / source peak)| over the regions that move in the source."""
    ratios = per_region_log_ratio(source, generated, min_peak)
    return float(np.mean(np.abs(list(ratios.values())))) if ratios else None
