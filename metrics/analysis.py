"""Per-clip measurements shared by every metric: faces, AUs, identity descriptors, canonical crops, flow profiles.

Each frame goes through the built-in face front end once (MediaPipe landmarks -> the toolkit's AU estimator, the
same measurement used to drive generation with ``--pre_treatment``); frames without a face are recorded and left out.
A clip's AUs come from the estimator's sequence mode (movement from its first face frame), a single image's from
the per-image mode.
All image metrics run on canonical 128 px crops (``openface.align``): one similarity transform, fitted on the
first frame with a face, warps the whole clip, so results of any size or framing (256 px outputs, full video
frames of other systems) become comparable. One transform per clip, not per frame: per-frame landmark jitter would
otherwise show up as flicker; head motion is removed from the flow instead (``motion.remove_head_motion``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from metrics import motion, quality
from openface.align import apply_affine, canonical_matrix

ANALYSIS_SIZE = 128  # the MEGC clips' own size; larger results are reduced to it


class Tools:
    """The heavy models, loaded once and shared by every clip: the face front end and dlib's descriptor."""

    def __init__(self, identity: bool = True):
        from openface.frontend import FaceFrontEnd

        self.front_end = FaceFrontEnd()
        self.seen: dict[tuple[bytes, bool], FaceFrame | None] = {}  # frame digest -> measurement (see detect)
        self.identity = None
        self.identity_problem = "identity metrics switched off"
        if identity:
            try:
                from metrics.identity import DlibIdentity

                self.identity = DlibIdentity()
                self.identity_problem = None
            except ImportError as exc:  # the rest of the evaluation is still worth having
                self.identity_problem = str(exc)


_SHARED: Tools | None = None


def shared_tools() -> Tools:
    """One Tools per process: loading MediaPipe and dlib costs about a second, repeated evaluations need not pay it."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Tools()
    return _SHARED


@dataclass
class FaceFrame:
    landmarks: np.ndarray  # (478, 3) in the frame's pixels
    aus: np.ndarray  # (17,) per-image estimate
    descriptor: np.ndarray | None  # (128,)
    face: object = None  # openface.landmarks.Face, for the sequence mode


@dataclass
class ClipAnalysis:
    """Everything the metrics need from one clip (a sequence, or a single template image as T = 1)."""

    rgb: np.ndarray  # (T, 128, 128, 3) uint8 canonical crops
    grey: np.ndarray  # (T, 128, 128) float64
    valid: np.ndarray  # (T,) a face was found
    aus: np.ndarray  # (T, 17), NaN rows without a face
    descriptors: np.ndarray  # (T, 128), NaN rows without a face or without dlib
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # regions on the first face frame
    profiles: dict | None = None  # motion.region_profiles output
    change: np.ndarray | None = None  # quality.static_change
    inception: np.ndarray | None = None  # (T, 2048) Inception features of the full frames (--inception only)

    @property
    def length(self) -> int:
        return len(self.valid)

    @property
    def no_face(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.valid)]

    @property
    def onset(self) -> int | None:
        return int(np.argmax(self.valid)) if self.valid.any() else None

    @property
    def expression(self) -> np.ndarray:
        return motion.expression_mask(self.masks) if self.masks else np.zeros(self.grey.shape[1:], bool)


MAX_REMEMBERED = 4096  # frames; about 60 MB of landmarks and descriptors


def detect(rgb: np.ndarray, tools: Tools, describe: bool = True) -> FaceFrame | None:
    """Face, AUs and (``describe``) identity descriptor of one frame. Identical frames are measured once: a frozen
    generator repeats the template, and a batch scores several results of one source clip."""
    key = (hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16).digest() + str(rgb.shape).encode(),
           describe)
    if key not in tools.seen:
        if len(tools.seen) >= MAX_REMEMBERED:
            tools.seen.pop(next(iter(tools.seen)))  # oldest first
        tools.seen[key] = _measure(rgb, tools, describe)
    return tools.seen[key]


def _measure(rgb: np.ndarray, tools: Tools, describe: bool) -> FaceFrame | None:
    faces = tools.front_end.landmarker.detect(rgb)
    if not faces:
        return None
    face = tools.front_end.pick(faces, rgb.shape[1])
    aus = tools.front_end.estimator.intensities(face)
    describe = describe and tools.identity is not None
    descriptor = tools.identity.describe(rgb, face.box) if describe else None
    return FaceFrame(face.landmarks, aus, descriptor, face)


def warp_to_canonical(rgb: np.ndarray, matrix: np.ndarray, size: int = ANALYSIS_SIZE) -> np.ndarray:
    """Warp with ``matrix`` (image -> canonical crop); a large frame is first reduced with area averaging so the
    crop is not aliased."""
    import cv2

    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.75:
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        pre = np.diag([small.shape[1] / w, small.shape[0] / h])
        matrix = np.hstack([matrix[:, :2] @ np.linalg.inv(pre), matrix[:, 2:]])
        rgb = small
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def analyse(frames: np.ndarray, tools: Tools, flow_method: str | None = "farneback",
            describe: bool = True, fps: float | None = None) -> ClipAnalysis:
    """Measure a clip (T, H, W, 3). ``flow_method=None`` skips flow and flicker (a template image);
    ``describe=False`` skips the identity descriptors (the slowest step, about 0.1 s a frame) when nothing needs
    them; ``fps`` sets the AU estimator's smoothing in sequence mode."""
    found = [detect(f, tools, describe) for f in frames]
    valid = np.array([f is not None for f in found], dtype=bool)
    aus = np.full((len(frames), 17), np.nan)
    descriptors = np.full((len(frames), 128), np.nan)
    for t, face in enumerate(found):
        if face is not None:
            aus[t] = face.aus
            if face.descriptor is not None:
                descriptors[t] = face.descriptor
    if valid.sum() >= 2:  # a clip: AUs follow its movement from the first face frame
        aus[valid] = tools.front_end.estimator.sequence([f.face for f in found if f is not None], fps)
    if valid.any():
        onset_face = found[int(np.argmax(valid))]
        matrix = canonical_matrix(onset_face.landmarks, ANALYSIS_SIZE)
        crop_landmarks = apply_affine(matrix, onset_face.landmarks)
        masks = motion.region_masks(crop_landmarks, ANALYSIS_SIZE)
        head = motion.head_mask(crop_landmarks, ANALYSIS_SIZE, masks)
    else:  # nothing to align on: keep the frames as they are, scaled to the analysis size
        s = ANALYSIS_SIZE / max(frames.shape[1:3])
        matrix = np.array([[s, 0.0, 0.0], [0.0, s, 0.0]])
        masks, head = {}, None
    rgb = np.stack([warp_to_canonical(f, matrix) for f in frames])
    clip = ClipAnalysis(rgb, quality.grey(rgb), valid, aus, descriptors, masks)
    if flow_method is not None and masks:
        grey_u8 = np.clip(np.round(clip.grey), 0, 255).astype(np.uint8)
        clip.profiles = motion.region_profiles(grey_u8, valid, masks, flow_method, head)
        clip.change = quality.static_change(clip.grey, ~clip.expression, valid)
    return clip
