"""Sequence mode of the AU estimator: AU intensities that follow a clip's movement from its onset.

A micro-expression moves a face by a pixel or two for a fraction of a second; a per-frame estimate (what a
photo gets) is dominated by who the person is and by frame-to-frame jitter. In a clip the estimator measures
change instead:

1. per frame, the sources of each AU (``SEQUENCE_SOURCES``): landmark measures of its region
   (``openface.au_geometry``, normalised by face size) and the MediaPipe blendshapes of the same movement;
2. each source is smoothed over ``SMOOTHING_S`` seconds (MediaPipe jitters by about a pixel between frames; the
   fastest ME onsets take 60 ms or more), and its value at the onset (first frame) is subtracted;
3. the changes are divided by their typical within-clip spread (``scales``), softly saturated at ``SATURATION``
   spreads (so that under a large, posed movement no single source, e.g. a blendshape that barely moves in an
   ME, outweighs the others) and summed per AU with equal weights and fixed signs: every source pushes its AU the
   way the muscle moves (no fitted signs, nothing to reverse);
4. intensity = the per-image estimate (smoothed the same way) + ``gain`` x the summed change, brought into
   OpenFace's 0..5 by ``bounded`` (a smooth floor at 0, so a movement below the onset's level is not flattened
   away). The per-image part keeps the level, and carries large expressions the saturated part cannot.

Only the spreads and one gain per AU are fitted (``python -m openface.calibrate``, stored in
``openface/au_calibration.json`` under "sequence"); a positive gain and the spreads do not change which way an AU
moves, and the within-clip correlation reported by the calibration is measured leave-one-clip-out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from openface.au_geometry import MEASURE_NAMES, region_measures

# AU -> its sources: a landmark measure (openface.au_geometry) or a blendshape; "-" negates, "*" averages the
# Left and Right blendshapes. Chosen from the FACS description of each AU, never from correlations.
SEQUENCE_SOURCES: dict[str, tuple[str, ...]] = {
    "AU01": ("inner_brow_up", "browInnerUp"),
    "AU02": ("outer_brow_up", "browOuterUp*"),
    "AU04": ("brow_down", "brow_squeeze", "browDown*"),
    "AU05": ("upper_lid_up", "eyeWide*"),
    "AU06": ("cheek_up", "lower_lid_up", "cheekSquint*"),
    "AU07": ("lower_lid_up", "eyeSquint*"),
    "AU09": ("nose_wing_up", "upper_lip_up"),  # noseSneer is left out: it falls when AU9 is coded (CK+)
    # AU10 also pushes the infraorbital triangle and the nostril wings up (FACS), which MediaPipe tracks better
    # than the upper lip's own sub-pixel rise in a micro-expression
    "AU10": ("upper_lip_up", "mouthUpperUp*", "nose_wing_up", "cheek_up"),
    "AU12": ("corner_up", "mouthSmile*"),
    "AU14": ("corner_back", "mouthDimple*"),
    "AU15": ("-corner_up", "mouthFrown*"),
    "AU17": ("chin_up", "mouthShrugLower"),
    "AU20": ("mouth_wide", "mouthStretch*"),
    "AU23": ("lips_thin", "mouthPress*"),
    "AU25": ("lips_apart", "jawOpen", "mouthLowerDown*"),
    "AU26": ("jaw_down", "jawOpen"),
    "AU45": ("eye_closed", "eyeBlink*"),
}
SOURCE_NAMES = tuple(sorted({s.lstrip("-") for sources in SEQUENCE_SOURCES.values() for s in sources}))
SATURATION = 3.0  # spreads: about the largest change of a source within the calibration's micro-expressions
SMOOTHING_S = 0.045  # 9 frames at CASME II's and SAMM's 200 fps; one frame (none) at 30 fps
DEFAULT_FPS = 30.0  # a clip of unknown rate is taken to be ordinary video: no smoothing


def source_values(landmarks: np.ndarray, blendshapes: dict[str, float]) -> np.ndarray:
    """(len(SOURCE_NAMES),) raw values of one face."""
    measures = dict(zip(MEASURE_NAMES, region_measures(landmarks)))

    def value(name: str) -> float:
        if name in measures:
            return measures[name]
        if name.endswith("*"):
            return 0.5 * (blendshapes.get(name[:-1] + "Left", 0.0) + blendshapes.get(name[:-1] + "Right", 0.0))
        return blendshapes.get(name, 0.0)

    return np.array([value(n) for n in SOURCE_NAMES])


FLOOR_SOFTNESS = 0.1  # intensity units: bounded(0) = 0.07, bounded(-0.5) < 0.001, bounded(x) ~ x above 0.4


def bounded(x: np.ndarray) -> np.ndarray:
    """OpenFace's 0..5 scale without a hard clip at 0: softplus with ``FLOOR_SOFTNESS``, so the order of values
    below and near 0 is kept (a hard clip turns the quiet part of a curve into a flat line); capped at 5."""
    return np.minimum(5.0, FLOOR_SOFTNESS * np.logaddexp(0.0, np.asarray(x, dtype=np.float64) / FLOOR_SOFTNESS))


def smoothing_frames(fps: float | None) -> int:
    """Odd moving-average window for ``SMOOTHING_S`` at ``fps``."""
    frames = int(round(SMOOTHING_S * (fps or DEFAULT_FPS)))
    return max(1, frames + (frames % 2 == 0))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0, the ends padded with the edge values (the onset stays the onset)."""
    if window <= 1 or len(values) < 2:
        return np.asarray(values, dtype=np.float64)
    half = window // 2
    padded = np.concatenate([np.repeat(values[:1], half, 0), values, np.repeat(values[-1:], half, 0)])
    cumulative = np.cumsum(np.vstack([np.zeros((1,) + values.shape[1:]), padded]), axis=0)
    return (cumulative[window:] - cumulative[:-window]) / window


def source_changes(values: np.ndarray, fps: float | None) -> np.ndarray:
    """(T, K) smoothed change of every source from the onset (frame 0)."""
    smoothed = smooth(np.asarray(values, dtype=np.float64), smoothing_frames(fps))
    return smoothed - smoothed[:1]


def au_changes(changes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(T, 17) per AU the sum of its sources' changes in units of their spread (each saturating smoothly at
    ``SATURATION``), signed by ``SEQUENCE_SOURCES``."""
    out = np.zeros((len(changes), len(OPENFACE_AUS)))
    for j, au in enumerate(OPENFACE_AUS):
        for source in SEQUENCE_SOURCES[au]:
            k = SOURCE_NAMES.index(source.lstrip("-"))
            spreads = (-1.0 if source.startswith("-") else 1.0) * changes[:, k] / scales[k]
            out[:, j] += SATURATION * np.tanh(spreads / SATURATION)
    return out


@dataclass(frozen=True)
class SequenceCalibration:
    scales: np.ndarray  # (K,) typical within-clip spread of each source, SOURCE_NAMES order
    gains: np.ndarray  # (17,) OpenFace intensity per unit of summed change

    @classmethod
    def from_dict(cls, data: dict) -> "SequenceCalibration":
        return cls(np.array([data["scales"][n] for n in SOURCE_NAMES]),
                   np.array([data["gains"][au] for au in OPENFACE_AUS]))

    @classmethod
    def default(cls) -> "SequenceCalibration":
        """Before any calibration: unit spreads, a gain of 0.1 per unit."""
        return cls(np.ones(len(SOURCE_NAMES)), np.full(len(OPENFACE_AUS), 0.1))

    def to_dict(self) -> dict:
        return {"scales": dict(zip(SOURCE_NAMES, self.scales.tolist())),
                "gains": dict(zip(OPENFACE_AUS, self.gains.tolist()))}


def sequence_intensities(image_linear: np.ndarray, values: np.ndarray, calibration: SequenceCalibration,
                         fps: float | None = None) -> np.ndarray:
    """(T, 17) intensities of a clip from its per-image estimates before bounding (T, 17) and its source values
    (T, K): the smoothed per-image estimate plus the calibrated change of the sources from the onset, bounded."""
    image = smooth(np.asarray(image_linear, dtype=np.float64), smoothing_frames(fps))
    change = au_changes(source_changes(values, fps), calibration.scales)
    return bounded(image + calibration.gains * change)
