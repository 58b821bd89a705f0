"""Per-clip measurements shared by every metric: faces, AUs, identity descriptors, canonical crops, flow profiles.

Each frame goes through the built-in face front end once (MediaPipe landmarks -> the toolkit's AU estimator, the
same measurement used to drive generation with ``--pre_treatment``); frames without a face are recorded and left out.
A clip's AUs come from the estimator's sequence mode (movement from its first face frame), a single image's from
the per-image mode.
All image metrics run on canonical 128 px crops (``openface.align``): one similarity transform, fitted on the
first frame with a face, warps the whole clip, so results of any size or framing (256 px outputs, full video
frames of other systems) become comparable. One transform per clip, not per frame: per-frame landmark jitter would
otherwise show up as flicker; head motion is removed from the flow instead (``motion.remove_flow_head_motion``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from metrics import motion, quality, texture
from metrics.clip_cache import ClipStore, clip_key
from openface.align import apply_affine, canonical_matrix

ANALYSIS_SIZE = 128  # the MEGC clips' own size; larger results are reduced to it
# dlib's descriptor was 85 % of the measuring time (about 80 ms a frame on one core). Within a clip the face is one
# person and changes little, so identity_distance / identity_same_rate / fd_dlib128 are taken over every 6th face
# frame (describe_frames); on the 12 MEGC2021 pairs of ULME-GAN that moved them by at most 0.004 / 0 / 0.007 per pair
# whichever frame the sixths start from (docs/benchmarks.md, "identity subsample"). --identity_every 1: every frame.
IDENTITY_EVERY = 6


class Tools:
    """The heavy models, loaded on first use and shared by every clip: the face front end and dlib's descriptor,
    and the store of measured clips (``metrics/clip_cache.py``). ``identity_every``: identity descriptors on every
    so many face frames of a clip (``describe_frames``; 1: every frame)."""

    def __init__(self, identity: bool = True, store: ClipStore | None = None, identity_every: int = IDENTITY_EVERY):
        self.seen: dict[bytes, FaceFrame | None] = {}  # frame digest -> measurement (see detect)
        self.clips = store if store is not None else ClipStore()
        self.identity_every = identity_every
        self._want_identity = identity
        self._front_end = None
        self._identity = None
        self._identity_problem: str | None = None

    @property
    def front_end(self):
        if self._front_end is None:
            from openface.frontend import FaceFrontEnd

            self._front_end = FaceFrontEnd()
        return self._front_end

    def _load_identity(self) -> None:
        if self._identity is not None or self._identity_problem is not None:
            return
        if not self._want_identity:
            self._identity_problem = "identity metrics switched off"
            return
        try:
            from metrics.identity import DlibIdentity

            self._identity = DlibIdentity()
        except ImportError as exc:  # the rest of the evaluation is still worth having
            self._identity_problem = str(exc)

    @property
    def identity(self):
        self._load_identity()
        return self._identity

    @property
    def identity_problem(self) -> str | None:
        self._load_identity()
        return self._identity_problem


_SHARED: Tools | None = None


def shared_tools() -> Tools:
    """One Tools per process: loading MediaPipe and dlib costs about a second, repeated evaluations need not pay it.
    The models load on first use, so a process whose clips were all measured by workers never loads them."""
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
    texture: dict | None = None  # texture.texture_profiles: region -> (T,) detail-energy change from onset
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


def frame_digest(rgb: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16).digest() + str(rgb.shape).encode()


def detect(rgb: np.ndarray, tools: Tools, describe: bool = True) -> FaceFrame | None:
    """Face, AUs and (``describe``) identity descriptor of one frame. Identical frames are measured once: a frozen
    generator repeats the template, and a batch scores several results of one source clip. A frame described once
    keeps its descriptor (the same for the same pixels); callers that describe a subsample use only theirs."""
    key = frame_digest(rgb)
    if key not in tools.seen:
        if len(tools.seen) >= MAX_REMEMBERED:
            tools.seen.pop(next(iter(tools.seen)))  # oldest first
        tools.seen[key] = _measure(rgb, tools)
    found = tools.seen[key]
    if found is not None and describe and found.descriptor is None and tools.identity is not None:
        found.descriptor = tools.identity.describe(rgb, found.face.box)
    return found


def _measure(rgb: np.ndarray, tools: Tools) -> FaceFrame | None:
    faces = tools.front_end.landmarker.detect(rgb)
    if not faces:
        return None
    face = tools.front_end.pick(faces, rgb.shape[1])
    return FaceFrame(face.landmarks, tools.front_end.estimator.intensities(face), None, face)


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


def measurement_key(frames: np.ndarray, tools: Tools, flow_method: str | None, describe: bool,
                    fps: float | None) -> str:
    """The store key of ``analyse(frames, tools, flow_method, describe, fps)``."""
    return clip_key(frames, flow=flow_method, describe=describe, fps=fps,
                    identity_every=tools.identity_every if describe else None)


def describe_frames(valid: np.ndarray, every: int) -> np.ndarray:
    """(T,) which frames of a clip get an identity descriptor: every ``every``-th face frame, from the first
    (frames without a face are skipped, not counted). Evenly spread in time, so the means over them follow the
    whole clip's closely (a random draw of as many frames moved them about twice as much on the MEGC2021 pairs);
    a single image (a template) is always described."""
    described = np.zeros(len(valid), bool)
    described[np.flatnonzero(valid)[::max(1, every)]] = True
    return described


def analyse(frames: np.ndarray, tools: Tools, flow_method: str | None = "farneback",
            describe: bool = True, fps: float | None = None, persist: bool = False, once: bool = False) -> ClipAnalysis:
    """Measure a clip (T, H, W, 3). ``flow_method=None`` skips flow and flicker (a template image);
    ``describe=False`` skips the identity descriptors (the slowest step) when nothing needs them, otherwise every
    ``tools.identity_every``-th face frame is described (``describe_frames``); ``fps`` sets the AU estimator's
    smoothing in sequence mode.

    A clip measured before with the same parameters comes from ``tools.clips`` (metrics/clip_cache.py);
    ``persist``: also keep it in the store's disk folder (sources and templates), ``once``: keep it in memory for
    one more read only (a result measured ahead by a worker)."""
    key = measurement_key(frames, tools, flow_method, describe, fps)
    clip = tools.clips.get(key, ClipAnalysis, quality.grey)
    if clip is None:
        clip = _measure_clip(frames, tools, flow_method, describe, fps)
        if persist:
            tools.clips.save(key, clip)
        if persist or once:
            tools.clips.remember(key, clip, once=once)
    return clip


def _measure_clip(frames: np.ndarray, tools: Tools, flow_method: str | None, describe: bool,
                  fps: float | None) -> ClipAnalysis:
    found = [detect(f, tools, describe=False) for f in frames]
    valid = np.array([f is not None for f in found], dtype=bool)
    aus = np.full((len(frames), 17), np.nan)
    descriptors = np.full((len(frames), 128), np.nan)
    for t, face in enumerate(found):
        if face is not None:
            aus[t] = face.aus
    if describe and tools.identity is not None:
        chosen = describe_frames(valid, tools.identity_every)
        for t in np.flatnonzero(chosen):
            descriptors[t] = detect(frames[t], tools, describe=True).descriptor
    if valid.sum() >= 2:  # a clip: AUs follow its movement from the first face frame
        aus[valid] = tools.front_end.estimator.sequence([f.face for f in found if f is not None], fps)
    if valid.any():
        onset_face = found[int(np.argmax(valid))]
        matrix = canonical_matrix(onset_face.landmarks, ANALYSIS_SIZE)
        crop_landmarks = apply_affine(matrix, onset_face.landmarks)
        masks = motion.region_masks(crop_landmarks, ANALYSIS_SIZE)
        head = motion.head_mask(crop_landmarks, ANALYSIS_SIZE, masks)
        texture_masks = texture.texture_masks(crop_landmarks, ANALYSIS_SIZE)
    else:  # nothing to align on: keep the frames as they are, scaled to the analysis size
        s = ANALYSIS_SIZE / max(frames.shape[1:3])
        matrix = np.array([[s, 0.0, 0.0], [0.0, s, 0.0]])
        masks, head, texture_masks = {}, None, {}
    rgb = np.stack([warp_to_canonical(f, matrix) for f in frames])
    clip = ClipAnalysis(rgb, quality.grey(rgb), valid, aus, descriptors, masks)
    if flow_method is not None and masks:
        grey_u8 = np.clip(np.round(clip.grey), 0, 255).astype(np.uint8)
        clip.profiles = motion.region_profiles(grey_u8, valid, masks, flow_method, head)
        clip.change = quality.static_change(clip.grey, ~clip.expression, valid)
        clip.texture = texture.texture_profiles(clip.grey, valid, texture_masks)
    return clip
