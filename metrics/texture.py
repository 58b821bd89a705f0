"""Texture: how the fine skin detail (furrows, wrinkles, creases, the edges of shading) in each facial region
changes from the onset frame to every frame, beyond what the motion explains, source against result.

A warp moves the template's pixels but creates no furrow; an AU's texture (AU4's vertical glabella lines, AU1+2's
forehead lines, AU6's crow's feet, AU12's deeper nasolabial fold) adds fine detail. The measure, on the canonical
128 px grey crops: the fine-detail band is a difference of Gaussians (sigma ``DOG_SIGMAS``: structures about 2-10 px
wide, above pixel noise and below the shading of the face's shape). For each frame t the onset frame is warped onto
frame t by the dense optical flow between them (Farneback, t -> onset; bicubic), which predicts frame t as motion
alone would make it; the region's texture change is the detail energy (mean square) of frame t minus that of the
prediction, relative to the onset's: ``(energy(frame t) - energy(warped onset)) / energy(onset)``. A pure warp is
explained by its flow and leaves the profile nearly flat; new furrows, which no flow can make from the onset's
pixels, raise it. Source and result profiles are compared by Pearson r per region (forehead with brows and glabella,
eyes with crow's feet, nasolabial folds, mouth), averaged through Fisher z: ``texture_r``. A flat result profile
against a changing source scores 0, as in ``flow_r``.

Only the images are read; landmarks place the regions on the onset frame and nothing else. The flow is always
Farneback (texture_profiles costs about 6 ms a frame with it; it only tracks, so ``--flow`` does not change it).
"""
from __future__ import annotations

import numpy as np

from metrics.au import pearson_r
from metrics.motion import REGION_LANDMARKS, region_masks
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
    """Region name -> (size, size) bool mask of the texture regions (``metrics.motion.region_masks``'s rule)."""
    return region_masks(landmarks, size, TEXTURE_LANDMARKS, TEXTURE_MARGIN)


def detail(grey: np.ndarray) -> np.ndarray:
    """The high-frequency band of a grey image (float): difference of two Gaussian blurs, ``DOG_SIGMAS``."""
    import cv2

    image = np.asarray(grey, dtype=np.float32)
    fine, coarse = (cv2.GaussianBlur(image, (0, 0), s, borderType=cv2.BORDER_REFLECT) for s in DOG_SIGMAS)
    return fine - coarse


def warped_onset(onset: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The onset frame (float grey) moved onto ``frame`` by their dense flow: frame as motion alone would make it."""
    import cv2

    to_onset = cv2.calcOpticalFlowFarneback(_grey_u8(frame), _grey_u8(onset), None, pyr_scale=0.5, levels=3,
                                            winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    ys, xs = np.mgrid[0:onset.shape[0], 0:onset.shape[1]].astype(np.float32)
    return cv2.remap(np.asarray(onset, np.float32), xs + to_onset[..., 0], ys + to_onset[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REPLICATE)


def _grey_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def texture_profiles(grey: np.ndarray, valid: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Region -> (T,) change of the detail energy that motion does not explain, relative to the onset's:
    (energy(frame t) - energy(onset warped onto frame t)) / energy(onset). Frames without a face, and regions without
    detail at onset, are NaN."""
    profiles = {region: np.full(len(grey), np.nan) for region in masks}
    if not valid.any():
        return profiles
    onset = int(np.argmax(valid))
    base = detail(grey[onset]) ** 2
    scale = {region: float(base[mask].mean()) if mask.any() else 0.0 for region, mask in masks.items()}
    for t in np.flatnonzero(valid):
        frame = detail(grey[t]) ** 2
        moved = base if t == onset else detail(warped_onset(grey[onset], grey[t])) ** 2
        for region, mask in masks.items():
            if scale[region] > 1e-9:
                profiles[region][t] = float(frame[mask].mean() - moved[mask].mean()) / scale[region]
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
