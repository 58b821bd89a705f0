"""Built-in AU estimator: OpenFace-style AU intensities (0..5) and presence from MediaPipe landmarks and blendshapes.

Two modes:

- per image (photos, templates, single faces): each OpenFace AU is read from the blendshape(s) that describe the
  same muscle movement (table ``AU_SOURCES``); AU06 (cheek raiser) also uses the landmarks, because the cheekSquint
  blendshape alone misses many smiles: the cheeks rise towards the eyes (``cheek_raise``); AU09 (nose wrinkler)
  uses the landmarks only (``nose_raise``), because the noseSneer blendshape falls when AU9 is present. The score
  is mapped to OpenFace's 0..5 scale by a per-AU line ``intensity = gain * score + offset`` (smoothly floored at
  0 and capped at 5: ``au_sequence.bounded``).
- per clip (``AUEstimator.sequence``): the movement from the clip's onset, see ``openface.au_sequence``.

Both are fitted against real OpenFace output (``python -m openface.calibrate``; constants in
``openface/au_calibration.json``). Presence is intensity >= ``PRESENCE_THRESHOLD``. N2ME's 18th value, the mouth
opening, is measured from the inner-lip landmarks of the aligned face.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from openface.align import apply_affine, canonical_matrix
from openface.au_geometry import MEASURES, canonical
from openface.au_sequence import SequenceCalibration, bounded, sequence_intensities, source_values
from openface.landmarks import LOWER_INNER_LIP, UPPER_INNER_LIP, Face

CALIBRATION_FILE = Path(__file__).with_name("au_calibration.json")
# A calibration refitted on a researcher's own OpenFace-coded clips (python -m openface.calibrate --clips ...)
# replaces the shipped one everywhere (labels, test-mode re-encoding, --mode eval) when this names it.
CALIBRATION_ENV = "MEGAN_AU_CALIBRATION"
PRESENCE_THRESHOLD = 1.0  # OpenFace intensities below 1 are mostly noise on neutral faces

# OpenFace AU -> the MediaPipe blendshapes averaged to measure it (left and right sides pooled: OpenFace's AUs are
# bilateral). Chosen by FACS definitions of the AUs and of the ARKit blendshapes.
AU_SOURCES: dict[str, tuple[str, ...]] = {
    "AU01": ("browInnerUp",),  # inner brow raiser
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),  # outer brow raiser
    "AU04": ("browDownLeft", "browDownRight"),  # brow lowerer
    "AU05": ("eyeWideLeft", "eyeWideRight"),  # upper lid raiser
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),  # cheek raiser
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),  # lid tightener
    "AU09": (),  # nose wrinkler: landmarks only (nose_raise); noseSneer falls when AU9 is present
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),  # upper lip raiser
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),  # lip corner puller
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),  # dimpler
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),  # lip corner depressor
    "AU17": ("mouthShrugLower",),  # chin raiser
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),  # lip stretcher
    "AU23": ("mouthPressLeft", "mouthPressRight"),  # lip tightener (pressed, narrowed lips)
    "AU25": ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"),  # lips part
    "AU26": ("jawOpen",),  # jaw drop
    "AU45": ("eyeBlinkLeft", "eyeBlinkRight"),  # blink
}


# Cheek raise from landmarks: vertical distance (px in the canonical 128 px crop) from the eye-corner line down to
# the upper cheek points (mesh 50 and 280); it shrinks when AU06 lifts the cheeks. Centre and softness are the
# mean (24.5 px) and, rounded, the standard deviation (1 px) of that distance over the MEGC2021 package's frames.
CHEEK_POINTS = (50, 280)
CHEEK_NEUTRAL_PX, CHEEK_SOFTNESS_PX = 24.5, 1.0
EYE_CORNERS = (33, 133, 362, 263)


def aligned_landmarks(landmarks: np.ndarray, size: int = 128) -> np.ndarray:
    return apply_affine(canonical_matrix(landmarks, size), landmarks)


def cheek_raise(aligned: np.ndarray) -> float:
    """0..1, smooth and monotonic: higher when the cheeks sit closer to the eyes."""
    eye_line = aligned[list(EYE_CORNERS), 1].mean()
    distance = aligned[list(CHEEK_POINTS), 1].mean() - eye_line
    return float(1.0 / (1.0 + np.exp((distance - CHEEK_NEUTRAL_PX) / CHEEK_SOFTNESS_PX)))


# Nose raise from landmarks: how far the nose wings sit above the eye-corner line (negative: below it), in the
# canonical 128 px crop; AU9 lifts them. Centre and softness: the mean (-29.6 px) and standard deviation (1.1 px)
# of that measure over the MEGC2021 package's clip frames (printed by ``python -m openface.calibrate``).
NOSE_NEUTRAL_PX, NOSE_SOFTNESS_PX = -29.6, 1.1


def nose_raise(landmarks: np.ndarray) -> float:
    """0..1, smooth and monotonic: higher when the nose wings are drawn up towards the eyes."""
    height = MEASURES["nose_wing_up"](canonical(landmarks))
    return float(1.0 / (1.0 + np.exp(-(height - NOSE_NEUTRAL_PX) / NOSE_SOFTNESS_PX)))


def au_features(face: Face) -> np.ndarray:
    """(17,) raw scores in OpenFace AU order: the mean of each AU's source blendshapes (AU06: half cheek raise,
    AU09: nose raise)."""
    shapes = face.blendshapes
    scores = np.array([np.mean([shapes.get(name, 0.0) for name in AU_SOURCES[au]]) if AU_SOURCES[au] else 0.0
                       for au in OPENFACE_AUS])
    au06 = OPENFACE_AUS.index("AU06")
    scores[au06] = 0.5 * scores[au06] + 0.5 * cheek_raise(aligned_landmarks(face.landmarks))
    scores[OPENFACE_AUS.index("AU09")] = nose_raise(face.landmarks)
    return scores


def calibration_in_use() -> dict:
    """Which calibration an AUEstimator() would use: for the records of evaluations and labelled data."""
    custom = os.environ.get(CALIBRATION_ENV)
    return {"file": custom or str(CALIBRATION_FILE), "source": Calibration.default().source}


def mouth_opening(aligned: np.ndarray) -> float:
    """N2ME's mouth opening: mean gap between the three inner upper-lip and three inner lower-lip points, in pixels
    of the canonical 128 px crop (N2ME measured it on 128x128 faces; its training set spanned 0..33 px)."""
    upper = aligned[list(UPPER_INNER_LIP), :2]
    lower = aligned[list(LOWER_INNER_LIP), :2]
    return float(np.linalg.norm(upper - lower, axis=1).mean())


@dataclass(frozen=True)
class Calibration:
    gain: np.ndarray  # (17,) per-image line
    offset: np.ndarray  # (17,)
    source: str = ""
    sequence: SequenceCalibration = SequenceCalibration.default()

    @classmethod
    def load(cls, path: Path = CALIBRATION_FILE) -> "Calibration":
        try:
            data = json.loads(Path(path).read_text())
            gain = np.array([data["aus"][au]["gain"] for au in OPENFACE_AUS], dtype=np.float64)
            offset = np.array([data["aus"][au]["offset"] for au in OPENFACE_AUS], dtype=np.float64)
            sequence = SequenceCalibration.from_dict(data["sequence"]) if "sequence" in data else \
                SequenceCalibration.default()
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not an AU estimator calibration ({type(err).__name__}: {err}); write one "
                             f"with python -m openface.calibrate") from err
        return cls(gain, offset, data.get("source", ""), sequence)

    @classmethod
    def default(cls) -> "Calibration":
        """``$MEGAN_AU_CALIBRATION`` when set, else the shipped calibration."""
        custom = os.environ.get(CALIBRATION_ENV)
        if custom:
            if not Path(custom).is_file():
                raise FileNotFoundError(f"${CALIBRATION_ENV}={custom}: no such file; write it with python -m "
                                        f"openface.calibrate --out {custom}, or unset {CALIBRATION_ENV}")
            return cls.load(Path(custom))
        return cls.load() if CALIBRATION_FILE.is_file() else cls.identity()

    @classmethod
    def identity(cls) -> "Calibration":
        """Score 0..1 -> 0..5 linearly: used before any calibration exists."""
        return cls(np.full(len(OPENFACE_AUS), 5.0), np.zeros(len(OPENFACE_AUS)), "identity")

    def linear(self, features: np.ndarray) -> np.ndarray:
        """The per-AU lines, before bounding to 0..5 (the sequence mode adds its change to these)."""
        return features * self.gain + self.offset

    def apply(self, features: np.ndarray) -> np.ndarray:
        return bounded(self.linear(features))


class AUEstimator:
    """Face -> OpenFace AU intensities (17,), presence (17,), and the mouth opening in 128 px units."""

    def __init__(self, calibration: Calibration | None = None):
        self.calibration = calibration if calibration is not None else Calibration.default()

    def intensities(self, face: Face) -> np.ndarray:
        """Per-image mode: (17,) intensities of one face."""
        return self.calibration.apply(au_features(face))

    def sequence(self, faces: list[Face], fps: float | None = None) -> np.ndarray:
        """Per-clip mode: (T, 17) intensities of a clip's faces in frame order, the first being the onset (or a
        neutral frame of the same person); ``fps`` sets the smoothing window (``openface.au_sequence``)."""
        if not faces:
            return np.zeros((0, len(OPENFACE_AUS)))
        scores = np.stack([au_features(f) for f in faces])
        values = np.stack([source_values(f.landmarks, f.blendshapes) for f in faces])
        return self.clip_intensities(scores, values, fps)

    def clip_intensities(self, scores: np.ndarray, values: np.ndarray, fps: float | None = None) -> np.ndarray:
        """Per-clip mode from per-frame raw scores (T, 17) (``au_features``) and sources (T, K)
        (``au_sequence.source_values``)."""
        return sequence_intensities(self.calibration.linear(scores), values, self.calibration.sequence, fps)

    def measure(self, face: Face) -> dict:
        intensity = self.intensities(face)
        return {"intensity": intensity, "presence": (intensity >= PRESENCE_THRESHOLD).astype(np.float64),
                "mouth_opening_px128": mouth_opening(aligned_landmarks(face.landmarks))}
