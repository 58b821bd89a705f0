"""The skin motion between landmarks: the driving clip's dense optical flow beyond what its landmarks explain.

MediaPipe's mesh is a regularised shape model: on the MEGC2021 clips it reports less motion than the skin shows
(the brows, forehead and nose wings move further in the dense optical flow than the landmarks there; docs/motion.md
has the measurement). The residual is

    flow(onset -> frame t)  -  the piecewise-affine interpolation of the landmarks' own displacement,

computed with OpenCV's DIS flow on the source frames, kept inside the face mesh only, smoothed over time like the
landmarks (motion/driving.py) and in space, and carried to the template through the mesh correspondence (each
template pixel reads the residual at its place on the source's onset face, scaled by the two faces' sizes).
Head motion is in both terms and cancels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from motion.canonical import canonical_frame
from motion.driving import SMOOTH_MS, smooth_over_time
from motion.warp import TemplateWarp

SPATIAL_SIGMA = 0.012  # spatial smoothing of the residual, in canonical units (1.5 px on a 128 px MEGC face)


@dataclass
class FlowResidual:
    """A clip's residual skin motion, (T, h, w, 2) pixels of the source frames, and the onset face it lives on."""

    residual: np.ndarray
    onset_landmarks: np.ndarray  # (N, 2) pixels of the source's onset frame


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def flow_residual(frames: list[np.ndarray], landmarks: np.ndarray, fps: float,
                  smooth_ms: float = SMOOTH_MS) -> FlowResidual:
    """The residual of a clip's RGB ``frames`` with their raw (T, N, 3) pixel ``landmarks``."""
    onset_rgb = frames[0]
    onset_points = landmarks[0, :, :2]
    mesh = TemplateWarp(onset_rgb, onset_points, held=())
    inside = mesh.face_mask()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    onset_grey = _grey(onset_rgb)
    residual = np.zeros((len(frames),) + onset_grey.shape + (2,), np.float32)
    ys, xs = np.nonzero(inside)
    design = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64)
    for t in range(1, len(frames)):
        flow = dis.calc(onset_grey, _grey(frames[t]), None)
        res = flow[ys, xs] - mesh.field(landmarks[t, :, :2] - onset_points)[ys, xs]
        # An affine part of the residual is the flow's and the landmarks' disagreement on the head's motion, not
        # skin: fitted over the face and removed, so only local motion is transferred.
        coef, *_ = np.linalg.lstsq(design, res, rcond=None)
        residual[t][ys, xs] = res - design @ coef
    residual = smooth_over_time(residual, fps, smooth_ms)
    sigma = SPATIAL_SIGMA * canonical_frame(onset_points).unit
    for t in range(len(residual)):
        residual[t] = cv2.GaussianBlur(residual[t], (0, 0), sigma) * inside[..., None]
    residual -= residual[:1]  # relative to the onset, like the landmarks
    return FlowResidual(residual, onset_points)


def source_positions(template: TemplateWarp, onset_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each template pixel sits on the source's onset face (remap maps, float32): the template pixels'
    barycentric weights applied to the source's onset landmarks (meaningful inside the face mesh)."""
    where = np.asarray(template.weights @ onset_landmarks.astype(np.float32))
    shape = (template.height, template.width)
    return where[:, 0].reshape(shape).astype(np.float32), where[:, 1].reshape(shape).astype(np.float32)


class ResidualTransfer:
    """Precomputed per (clip, template): where each template pixel sits on the source's onset face."""

    def __init__(self, template: TemplateWarp, source: FlowResidual):
        self.map_x, self.map_y = source_positions(template, source.onset_landmarks)
        self.inside = template.face_mask().astype(np.float32)[..., None]
        src_frame, tpl_frame = canonical_frame(source.onset_landmarks), canonical_frame(template.landmarks)
        # source pixels -> canonical -> template pixels, for vectors: a 2x2 matrix
        self.vector_map = (src_frame.axes.T / src_frame.unit) @ (tpl_frame.axes * tpl_frame.unit)
        self.source = source

    def field(self, t: int, factor: float = 1.0) -> np.ndarray:
        """The residual of source frame ``t`` as a forward displacement of the template's pixels (H, W, 2)."""
        res = self.source.residual[min(t, len(self.source.residual) - 1)]
        sampled = cv2.remap(res, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return (sampled @ self.vector_map.astype(np.float32)) * (self.inside * np.float32(factor))


# ---------------------------------------------------------------------------------------- shading and furrows

RATIO_SIGMA = 0.008  # spatial smoothing of the shading ratio, in canonical units (1 px on a 128 px MEGC face)
RATIO_LIMITS = (0.75, 1.25)  # a furrow darkens skin by 10-20 %; beyond this it is misregistration, not shading
RATIO_EPS = 8.0  # grey levels added before dividing, so dark pixels (nostrils, lashes) do not amplify noise
# The eye openings and the inner mouth: their edges are so strong that a tenth of a pixel of misregistration reads as
# a shading change, and the irises move on their own. The ratio is 1 there, feathered over a few pixels.
EYE_AND_MOUTH_OPENINGS = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
    (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191),
)
OPENING_MARGIN = 0.06  # canonical units around each opening (about 4 px on a 128 px MEGC face)


@dataclass
class ShadingRatio:
    """A clip's shading change: (T, h, w) ratio of each frame's brightness to the onset's, in the onset's geometry
    (1 = no change), and the onset face it lives on."""

    ratio: np.ndarray
    onset_landmarks: np.ndarray  # (N, 2) pixels of the source's onset frame


def shading_ratio(frames: list[np.ndarray], landmarks: np.ndarray, fps: float,
                  smooth_ms: float = SMOOTH_MS) -> ShadingRatio:
    """Each frame's luminance brought back to the onset face's geometry (a piecewise-affine warp by its landmarks),
    divided by the onset's: furrows and shading that appear during the clip, without its motion and without the
    source person's own (constant) wrinkles. Smoothed in time and space, kept inside the face, clamped."""
    onset_points = landmarks[0, :, :2]
    smooth_points = smooth_over_time(landmarks[:, :, :2], fps, smooth_ms)
    sigma = RATIO_SIGMA * canonical_frame(onset_points).unit
    onset_grey = cv2.GaussianBlur(_grey(frames[0]).astype(np.float32), (0, 0), sigma) + RATIO_EPS
    ratio = np.ones((len(frames),) + onset_grey.shape, np.float32)
    mesh = TemplateWarp(frames[0], onset_points, held=())
    inside = mesh.face_mask()
    gx, gy = mesh.grid
    for t in range(1, len(frames)):
        # Frame t brought back onto the onset face: each onset pixel reads frame t where the onset-to-t motion
        # (the landmarks' displacement, interpolated on the onset's mesh) has carried it.
        forward = mesh.field(smooth_points[t] - onset_points)
        back = cv2.remap(frames[t], gx + forward[..., 0], gy + forward[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        grey = cv2.GaussianBlur(_grey(back).astype(np.float32), (0, 0), sigma) + RATIO_EPS
        ratio[t] = grey / onset_grey
    ratio = smooth_over_time(ratio, fps, smooth_ms)
    ratio /= ratio[:1]  # relative to the onset, like the motion
    keep = inside.astype(np.float32) * (1.0 - openings_mask(onset_points, onset_grey.shape))
    ratio = 1.0 + (np.clip(ratio, *RATIO_LIMITS) - 1.0) * keep
    return ShadingRatio(ratio.astype(np.float32), onset_points)


def openings_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32: 1 over the eye openings and the inner mouth (with a margin), falling to 0 over the margin."""
    unit = canonical_frame(landmarks).unit
    mask = np.zeros(shape, np.uint8)
    for contour in EYE_AND_MOUTH_OPENINGS:
        cv2.fillPoly(mask, [np.round(landmarks[list(contour), :2]).astype(np.int32)], 255)
    margin = max(1, int(round(OPENING_MARGIN * unit)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), margin / 2)


class ShadingTransfer:
    """Per (clip, template): the clip's shading ratio carried onto the template through the mesh correspondence."""

    def __init__(self, template: TemplateWarp, source: ShadingRatio):
        self.map_x, self.map_y = source_positions(template, source.onset_landmarks)
        self.inside = template.face_mask()
        self.base = template.image.astype(np.float32)
        self.source = source

    def texture(self, t: int) -> np.ndarray:
        """The additive change (H, W, 3) in 0..255 units that gives the template frame ``t``'s shading."""
        ratio = self.source.ratio[min(t, len(self.source.ratio) - 1)]
        sampled = cv2.remap(ratio, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=1.0)
        sampled = np.where(self.inside, sampled, 1.0).astype(np.float32)
        return self.base * (sampled - 1.0)[..., None]
