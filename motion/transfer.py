"""Motion transfer onto one template: what the solvers call.

``TemplateMotion`` holds everything that depends only on the template (its landmarks, canonical frame and warp).
It turns a driving clip's motion (motion/driving.py) or an AU trajectory (motion/primitives.py) into per-landmark
pixel displacements on the template, and renders frames from them, with an optional texture change on top.
"""
from __future__ import annotations

import atexit
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motion.canonical import canonical_frame
from motion.driving import ClipMotion, clip_motion, measure_landmarks
from motion.retarget import retarget
from motion.warp import TemplateWarp


class NoTemplateFaceError(ValueError):
    """The template has no detectable face, so there is nothing to move."""


@functools.lru_cache(maxsize=1)
def shared_landmarker():
    """One MediaPipe graph for the process (creating one costs about 0.1 s)."""
    from openface.landmarks import Landmarker

    landmarker = Landmarker(max_faces=1)
    atexit.register(landmarker.close)
    return landmarker


@dataclass
class TemplateMotion:
    warp: TemplateWarp
    landmarks: np.ndarray  # (478, 3) pixels of the template at the output size

    @classmethod
    def from_image(cls, image: np.ndarray, where: str | Path) -> "TemplateMotion":
        faces = shared_landmarker().detect(image)
        if not faces:
            raise NoTemplateFaceError(f"{where}: no face found in the template, so motion transfer has nothing to "
                                      f"move; use a photo with one frontal face, or --motion none")
        return cls(TemplateWarp(image, faces[0].landmarks), faces[0].landmarks)

    @property
    def frame(self):
        return canonical_frame(self.landmarks)

    def shape(self) -> np.ndarray:
        """The template's landmarks in its own canonical frame (N, 2)."""
        return self.frame.to_canonical(self.landmarks)

    def from_clip(self, motion: ClipMotion, factor: float = 1.0) -> np.ndarray:
        """The clip's motion retargeted onto this template: (T, N, 2) pixel displacements, scaled by ``factor``
        (magnification moves the face further; it paints nothing)."""
        moved = retarget(motion.displacements, motion.onset_shape, self.shape())
        return self.frame.vectors_to_pixels(moved * factor)

    def from_canonical(self, displacements: np.ndarray, reference: np.ndarray, factor: float = 1.0) -> np.ndarray:
        """Canonical displacements (T, N, 2) defined on ``reference`` (N, 2; e.g. the AU primitives' neutral face)
        -> pixel displacements on this template."""
        return self.frame.vectors_to_pixels(retarget(displacements, reference, self.shape()) * factor)

    def render(self, displacements: np.ndarray, texture: np.ndarray | None = None,
               extra: np.ndarray | None = None) -> np.ndarray:
        return self.warp.render(displacements, texture, extra)


def motion_of_clip(frames: list[np.ndarray], fps: float, name: str) -> ClipMotion:
    """A driving clip's facial motion from its RGB frames (landmarks by the shared MediaPipe graph)."""
    landmarks, found = measure_landmarks(frames, shared_landmarker())
    return clip_motion(landmarks, fps, found, name)
