"""Test mode's default generation: motion from the warp, texture from the generator.

- ``--motion clip``: the driving clip's landmark motion (head pose removed, denoised, relative to its onset)
  retargeted onto the template and rendered by a dense warp (motion/).
- ``--motion aus``: the AU trajectory turned into motion by the per-AU motion primitives (motion/primitives.py):
  the path for AU matrices, N2ME's ME curves and the MEGC2022 AU input.
- ``--motion none``: the seeds' AU-only generation (the generator's output is the frame).
- ``--motion auto`` (default): ``clip`` when the driving input has frames, else ``aus``.

With ``--texture generator`` (default) the generator adds only its AU-driven change, G(template, AUs of frame t)
minus G(template, AUs of frame 0), moved by the same warp: wrinkles and shading follow the AUs, and whatever the
generator paints at every frame (the onset streaks of the bundled model) cancels. ``--texture none`` is the warp
alone and never runs the generator.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from media.images import load_rgb
from motion.dense import (
    FlowResidual,
    ResidualTransfer,
    ShadingRatio,
    ShadingTransfer,
    flow_residual,
    shading_ratio,
)
from motion.driving import SMOOTH_MS, ClipMotion, clip_motion, fill_lost_frames, measure_landmarks
from motion.transfer import TemplateMotion, shared_landmarker

log = logging.getLogger(__name__)

MOTION_KINDS = ("auto", "clip", "aus", "none")
TEXTURE_KINDS = ("auto", "clip", "generator", "none")


@dataclass
class MotionSettings:
    motion: str = "auto"
    texture: str = "auto"
    smooth_ms: float = SMOOTH_MS  # temporal filter of the clip's landmarks (motion/driving.py)
    skin_flow: bool = False  # add the clip's dense-flow skin motion between landmarks (motion/dense.py)

    def texture_for(self, kind: str) -> str:
        """``auto``: the clip's own shading with a clip's motion, nothing with the AU path. Both measured against the
        generator's change on the MEGC2021 pairs (docs/motion.md): the bundled generator's change lowered every
        motion score and raised identity distance, the clip's shading raised au_r, flow_r and texture_r."""
        if self.texture != "auto":
            return self.texture
        return "clip" if kind == "clip" else "none"

    def resolve(self, has_frames: bool) -> str:
        """The motion source used for an input with (or without) source frames."""
        if self.motion == "clip" and not has_frames:
            raise ValueError("--motion clip needs a driving clip with frames (imgs/); an AU matrix drives "
                             "--motion aus (or auto)")
        kind = ("clip" if has_frames else "aus") if self.motion == "auto" else self.motion
        if self.texture == "clip" and kind != "clip":
            raise ValueError(f"--texture clip takes the shading of a driving clip; this input moves the face by "
                             f"{'its AUs' if kind == 'aus' else 'the generator alone'} (--motion {self.motion}), "
                             f"which has none: use --texture generator or none")
        return kind

    def folder_tag(self) -> str:
        """Appended to the seeds' result-folder names: '' for their own generation, else what moved the face."""
        if self.motion == "none":
            return ""
        tag = "_warp" if self.texture == "none" else "_motion"
        return tag + ("_aus" if self.motion == "aus" else "")

    def record(self, kind: str) -> dict:
        return {**asdict(self), "used": kind, "texture_used": self.texture_for(kind)}


SEEDS_GENERATION = MotionSettings(motion="none")  # ULME-GAN's and N2ME's own behaviour: the generator's output


@dataclass
class DrivingMotion:
    """What a driving clip gives every template: its landmark motion and, with --skin_flow, its skin motion."""

    landmarks: ClipMotion
    skin: FlowResidual | None = None
    shading: ShadingRatio | None = None


@functools.lru_cache(maxsize=4)
def _driving_motion(paths: tuple[str, ...], stamps: tuple[int, ...], fps: float, name: str, smooth_ms: float,
                    skin_flow: bool, shading: bool) -> DrivingMotion:
    """One clip's motion per process, whatever the number of templates it drives (keyed by the frames' mtimes)."""
    frames = [load_rgb(p) for p in paths]
    landmarks, found = measure_landmarks(frames, shared_landmarker())
    # Frames whose face was lost take their neighbours' landmarks, for the motion, the flow and the shading alike.
    filled, lost = fill_lost_frames(landmarks, found, name)
    motion = replace(clip_motion(filled, fps, None, name, smooth_ms), filled_frames=lost)
    return DrivingMotion(motion, flow_residual(frames, filled, fps, smooth_ms) if skin_flow else None,
                         shading_ratio(frames, filled, fps, smooth_ms) if shading else None)


def driving_motion(frames: list[Path], fps: float, name: str, smooth_ms: float = SMOOTH_MS,
                   skin_flow: bool = False, shading: bool = False) -> DrivingMotion:
    stamps = tuple(Path(p).stat().st_mtime_ns for p in frames)
    return _driving_motion(tuple(str(p) for p in frames), stamps, float(fps), name, float(smooth_ms), skin_flow,
                           shading)


@dataclass
class PixelMotion:
    """Every output frame's motion on the template: landmark displacements and, optionally, skin motion."""

    displacements: np.ndarray  # (T, 478, 2) pixels
    skin: ResidualTransfer | None
    factor: float
    record: dict
    shading: ShadingTransfer | None = None

    def extra(self, t: int) -> np.ndarray | None:
        return None if self.skin is None else self.skin.field(t, self.factor)

    def clip_texture(self, t: int) -> np.ndarray | None:
        """The driving clip's shading change at frame t on the template (``--texture clip``), or None. Not scaled
        by ``--factor``: magnification moves the face further, it does not paint deeper furrows."""
        return None if self.shading is None else self.shading.texture(t)


def pixel_motion(kind: str, template: TemplateMotion, settings: MotionSettings, *, frames: list[Path] | None,
                 fps: float, clip_name: str, targets: np.ndarray, au_names: tuple[str, ...],
                 factor: float) -> PixelMotion:
    """The template's motion for every output frame, and what to record about it."""
    if kind == "clip":
        drive = driving_motion(frames, fps, clip_name, settings.smooth_ms, settings.skin_flow,
                               settings.texture_for("clip") == "clip")
        moved = template.from_clip(drive.landmarks, factor)[:len(targets)]
        skin = ResidualTransfer(template.warp, drive.skin) if drive.skin is not None else None
        shading = ShadingTransfer(template.warp, drive.shading) if drive.shading is not None else None
        record = {"filled_frames": drive.landmarks.filled_frames, "smooth_ms": drive.landmarks.smooth_ms}
        return PixelMotion(moved, skin, factor, record, shading)
    from motion.primitives import load_primitives

    primitives = load_primitives()
    change = targets - targets[:1]  # the AU change since the onset frame (factor already in the targets)
    canonical = primitives.displacements(change, au_names)
    provenance = {"file": "motion/au_primitives.npz", "terms": primitives.info.get("terms")}
    return PixelMotion(template.from_canonical(canonical, primitives.reference), None, 1.0,
                       {"primitives": provenance})


def texture_change(first: np.ndarray, frame: np.ndarray, size: int) -> np.ndarray:
    """The generator's change from its first frame, in 0..255 units at the output size (float32)."""
    delta = frame.astype(np.float32) - first.astype(np.float32)
    if delta.shape[0] != size:
        delta = cv2.resize(delta, (size, size), interpolation=cv2.INTER_CUBIC)
    return delta
