"""Texture: how the fine skin detail (furrows, wrinkles, creases, the edges of shading) in each facial region
changes from the onset frame to every frame, source against result.

A warp moves the template's pixels but creates no furrow; an AU's texture (AU4's vertical glabella lines, AU1+2's
forehead lines, AU6's crow's feet, AU12's deeper nasolabial fold) adds fine detail. The measure: the high-frequency
energy of the canonical 128 px grey crop (a difference of Gaussians, sigma ``DOG_SIGMAS``: structures about 2-10 px
wide, above pixel noise and below the shading of the face's shape), averaged inside a region, as its relative
change from the onset frame: ``energy(t) / energy(onset) - 1``. Regions are fixed on the onset frame and dilated by a
margin larger than a micro-expression's motion (1-3 px at 128 px), so a pure warp keeps the same detail inside the
region and leaves the profile nearly flat, while new furrows raise it. Source and result profiles are compared by
Pearson r per region (forehead with brows and glabella, eyes with crow's feet, nasolabial folds, mouth), averaged
through Fisher z: ``texture_r``. A flat result profile against a changing source scores 0, as in ``flow_r``.

Only the image is read; landmarks place the regions on the onset frame and nothing else.
"""
from __future__ import annotations

import numpy as np

from metrics.au import pearson_r
from metrics.motion import REGION_LANDMARKS
from openface.reference_limits import fisher_mean

# MediaPipe Face Mesh indices (checked by drawing them on the MEGC2021 templates' canonical crops).
TEXTURE_LANDMARKS: dict[str, tuple[tuple[int, ...], ...]] = {
    # both brows, the glabella between them and the lower forehead above them: AU1, AU2, AU4 lines
    "forehead": (REGION_LANDMARKS["brows"][0] + REGION_LANDMARKS["brows"][1] + (69, 108, 151, 337, 299, 9),),
    # each eye with the lateral canthus skin: AU6/AU7 crow's feet and lid folds
    "eyes": (REGION_LANDMARKS["eyes"][0] + (226, 35, 143), REGION_LANDMARKS["eyes"][1] + (446, 265, 372)),
    # nose wing to the skin outside the mouth corner, each side: the nasolabial fold (AU9, AU10, AU12)
    "nasolabial": ((129, 64, 98, 165, 92, 186, 57, 212, 216, 206, 203, 205),
                   (358, 294, 327, 391, 322, 410, 287, 432, 436, 426, 423, 425)),
    # lips and the skin around them: AU10-AU28 lip and chin texture
    "mouth": REGION_LANDMARKS["mouth"],
}
# Margin around each outline, as a fraction of the crop size: about 5 px at 128, more than an ME moves the skin.
TEXTURE_MARGIN = {"forehead": 0.04, "eyes": 0.04, "nasolabial": 0.02, "mouth": 0.04}
TEXTURE_REGIONS = tuple(TEXTURE_LANDMARKS)
DOG_SIGMAS = (1.0, 3.0)  # px at 128: the finer blur removes pixel noise and JPEG blocks, the coarser the shading
FLAT_CHANGE = 1e-3  # a profile spanning less than 0.1 % of the onset energy does not change


def texture_masks(landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Region name -> (size, size) bool mask: the convex hull of each outline, dilated by the region's margin."""
    import cv2

    masks = {}
    for region, outlines in TEXTURE_LANDMARKS.items():
        mask = np.zeros((size, size), np.uint8)
        for outline in outlines:
            hull = cv2.convexHull(np.round(landmarks[list(outline), :2]).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 1)
        radius = max(1, int(round(TEXTURE_MARGIN[region] * size)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        masks[region] = cv2.dilate(mask, kernel).astype(bool)
    return masks


def detail(grey: np.ndarray) -> np.ndarray:
    """The high-frequency band of a grey image (float): difference of two Gaussian blurs, ``DOG_SIGMAS``."""
    import cv2

    image = np.asarray(grey, dtype=np.float32)
    fine, coarse = (cv2.GaussianBlur(image, (0, 0), s, borderType=cv2.BORDER_REFLECT) for s in DOG_SIGMAS)
    return fine - coarse


def texture_profiles(grey: np.ndarray, valid: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Region -> (T,) relative change of the detail energy from the first valid frame: energy(t) / energy(onset) - 1.
    Frames without a face, and regions without detail at onset, are NaN."""
    profiles = {region: np.full(len(grey), np.nan) for region in masks}
    if not valid.any():
        return profiles
    energy = {region: np.full(len(grey), np.nan) for region in masks}
    for t in np.flatnonzero(valid):
        squared = detail(grey[t]) ** 2
        for region, mask in masks.items():
            if mask.any():
                energy[region][t] = float(squared[mask].mean())
    onset = int(np.argmax(valid))
    for region, values in energy.items():
        if np.isfinite(values[onset]) and values[onset] > 1e-9:
            profiles[region] = values / values[onset] - 1.0
    return profiles


def _span(profile: np.ndarray) -> float:
    return float(np.nanmax(profile) - np.nanmin(profile)) if np.isfinite(profile).any() else 0.0


def per_region_texture_r(source: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> dict[str, float]:
    """Region -> Pearson r of the two texture profiles (same timeline). A flat result profile against a changing
    source is r = 0; a source region whose detail does not change gives no value."""
    out = {}
    for region, src in source.items():
        gen = generated.get(region)
        if gen is None or _span(src) < FLAT_CHANGE:
            continue
        r = 0.0 if _span(gen) < FLAT_CHANGE else pearson_r(src, gen)
        if r is not None:
            out[region] = r
    return out


def texture_correlation(source: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> float | None:
    """``texture_r``: the per-region correlations averaged through Fisher z."""
    return fisher_mean(per_region_texture_r(source, generated).values(), empty=None)
