"""The built-in face front end in one call: detect, pick a face, align, measure AUs, check quality."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catalog.au_schema import MOUTH_OPEN, OPENFACE_AUS, OPENFACE_PRESENCE
from openface.align import Crop, align_face
from openface.au_estimator import PRESENCE_THRESHOLD, AUEstimator
from openface.landmarks import Face, Landmarker


@dataclass(frozen=True)
class QualityLimits:
    """N2ME-style cleaning of training sets; the defaults only reject clearly unusable faces."""

    max_yaw: float = 30.0  # degrees
    max_pitch: float = 30.0
    min_sharpness: float = 20.0  # variance of the Laplacian of the 128 px grey crop
    min_face_px: float = 40.0  # outer-eye-corner distance in the original image; smaller faces give poor AUs


@dataclass
class FaceMeasurement:
    crop: Crop
    intensity: np.ndarray  # (17,) OpenFace-scale intensities
    presence: np.ndarray  # (17,) 0/1
    mouth_opening: float  # px in the canonical 128 px crop (N2ME's 18th value, before scaling)
    faces_found: int
    yaw_pitch_roll: tuple[float, float, float]
    sharpness: float
    problems: list[str] = field(default_factory=list)
    face: Face | None = None  # the detected face (landmarks, blendshapes): what the sequence mode needs


class NoFaceError(ValueError):
    pass


def sharpness(gray: np.ndarray) -> float:
    """Variance of a 4-neighbour Laplacian: low for blurred or flat images."""
    g = gray.astype(np.float64)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


class FaceFrontEnd:
    def __init__(self, size: int = 128, limits: QualityLimits = QualityLimits(), face_choice: str = "largest",
                 estimator: AUEstimator | None = None):
        self.size, self.limits, self.face_choice = size, limits, face_choice
        self.landmarker = Landmarker()
        self.estimator = estimator or AUEstimator()

    def close(self) -> None:
        self.landmarker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pick(self, faces: list[Face], width: int) -> Face:
        if self.face_choice == "largest":
            return faces[0]
        if self.face_choice == "center":  # the face nearest the image centre
            return min(faces, key=lambda f: abs((f.box[0] + f.box[2]) / 2 - width / 2))
        raise ValueError(f"unknown face choice {self.face_choice}")

    def measure(self, rgb: np.ndarray, where: str = "image") -> FaceMeasurement:
        faces = self.landmarker.detect(rgb)
        if not faces:
            raise NoFaceError(f"{where}: no face found")
        face = self.pick(faces, rgb.shape[1])
        crop = align_face(rgb, face.landmarks, self.size)
        au = self.estimator.measure(face)
        # Sharpness is judged at 128 px whatever the crop size, so one threshold fits all sizes.
        grey = (crop.image if self.size == 128 else align_face(rgb, face.landmarks, 128).image).mean(axis=2)
        result = FaceMeasurement(crop, au["intensity"], au["presence"], au["mouth_opening_px128"], len(faces),
                                 face.yaw_pitch_roll(), sharpness(grey), face=face)
        result.problems = self.quality_problems(result, face)
        return result

    def quality_problems(self, m: FaceMeasurement, face: Face) -> list[str]:
        yaw, pitch, _ = m.yaw_pitch_roll
        inter_ocular = float(np.linalg.norm(face.landmarks[33, :2] - face.landmarks[263, :2]))
        problems = []
        if abs(yaw) > self.limits.max_yaw or abs(pitch) > self.limits.max_pitch:
            problems.append(f"not frontal (yaw {yaw:.0f}, pitch {pitch:.0f} degrees)")
        if m.sharpness < self.limits.min_sharpness:
            problems.append(f"blurred (sharpness {m.sharpness:.0f} < {self.limits.min_sharpness:.0f})")
        if inter_ocular < self.limits.min_face_px:
            problems.append(f"face too small ({inter_ocular:.0f} px between the eyes)")
        return problems



# N2ME measured mouth openings of 0..33 px on 128 px faces; outside a training set, that range scales AU27*.
N2ME_MOUTH_RANGE_PX = 33.0


def au_vector(m: FaceMeasurement, au_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One measurement as an AU vector in ``au_names`` order (raw 0..5; AU27* from the mouth opening) and
    OpenFace-layout presence flags (18, AU28 never measured)."""
    values = dict(zip(OPENFACE_AUS, m.intensity))
    values[MOUTH_OPEN] = min(5.0, 5.0 * m.mouth_opening / N2ME_MOUTH_RANGE_PX)
    flags = dict(zip(OPENFACE_AUS, m.presence))
    return (np.array([values[au] for au in au_names], dtype=np.float64),
            np.array([flags.get(au, 0.0) for au in OPENFACE_PRESENCE], dtype=np.float64))


def follow_clip(measurements: list[FaceMeasurement], estimator: AUEstimator, fps: float | None) -> None:
    """Replace the per-image AUs of a clip's frames (in order, onset first) by the sequence mode's, in place."""
    if len(measurements) < 2:
        return
    intensity = estimator.sequence([m.face for m in measurements], fps)
    for m, row in zip(measurements, intensity):
        m.intensity, m.presence = row, (row >= PRESENCE_THRESHOLD).astype(np.float64)


def measure_images(images, au_names: tuple[str, ...], front_end: "FaceFrontEnd",
                   fps: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """AUs (T, n) and presence flags (T, 18) of a clip given as (name, RGB array) frames in order, measured in
    sequence mode (movement from the first frame; ``fps`` sets the smoothing). A frame without a face is an error
    naming it: a generated frame must never be driven by made-up AUs. So is a frame of another size than the
    first: the sequence mode measures movement from the first frame, and a frame from another recording or crop
    would read as a large movement (and become the apex)."""
    measurements, first = [], None
    for name, rgb in images:
        if first is None:
            first = (name, rgb.shape[:2])
        elif rgb.shape[:2] != first[1]:
            raise ValueError(f"{name}: {rgb.shape[1]}x{rgb.shape[0]} px, but the clip's first frame {first[0]} is "
                             f"{first[1][1]}x{first[1][0]}: the frames of a clip must share one size; resize or "
                             f"remove this frame")
        measurements.append(front_end.measure(rgb, str(name)))
    follow_clip(measurements, front_end.estimator, fps)
    pairs = [au_vector(m, au_names) for m in measurements]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
