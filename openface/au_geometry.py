"""Landmark measures per AU region, normalised by face size.

Every measure is taken on the face aligned to the canonical 128 px crop (``openface.align``: a similarity
transform fitted on the eye corners and the nose), so it is in pixels of a face whose eye corners sit at fixed
places: head position, roll and size are gone, and one unit is 1/128 of the canonical face width. Each measure is
signed so that it grows with the movement its AU makes (brow raised, lid lowered, lip corner pulled up ...); the
sequence mode of the estimator uses their change from the clip's onset.

Mesh indices are MediaPipe's 478-point face mesh (image left = the subject's right).
"""
from __future__ import annotations

import numpy as np

from openface.align import apply_affine, canonical_matrix

EYE_CORNERS = (33, 133, 362, 263)
INNER_BROW = (107, 55, 336, 285)
OUTER_BROW = (70, 46, 105, 300, 276, 334)
WHOLE_BROW = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336)
RIGHT_INNER_BROW, LEFT_INNER_BROW = (107, 55), (336, 285)
UPPER_LIDS = (159, 158, 160, 386, 385, 387)
LOWER_LIDS = (145, 144, 153, 374, 380, 373)
UPPER_CHEEKS = (50, 280, 101, 330, 205, 425)
NOSE_WINGS = (64, 294, 129, 358)
NOSE_TIP = (1, 2)
UPPER_LIP_TOP = (0, 37, 267)
LIP_CORNERS = (61, 291)
LIP_MIDLINE = (0, 17)  # top of the upper lip, bottom of the lower lip
UPPER_INNER, LOWER_INNER = (13, 82, 312), (14, 87, 317)
LOWER_LIP_AND_CHIN = (17, 18, 200)
CHIN = (152, 148, 377)


def canonical(landmarks: np.ndarray, size: int = 128) -> np.ndarray:
    """(478, 3) landmarks in the canonical size x size crop; depth (MediaPipe's z, larger = farther from the
    camera) scaled like x and y, or 0 when the landmarks are 2D."""
    matrix = canonical_matrix(landmarks, size)
    depth = landmarks[:, 2] if landmarks.shape[1] > 2 else np.zeros(len(landmarks))
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    return np.column_stack([apply_affine(matrix, landmarks), depth * scale])


def _y(p: np.ndarray, idx) -> float:
    return float(p[list(idx), 1].mean())


def _x(p: np.ndarray, idx) -> float:
    return float(p[list(idx), 0].mean())


def _z(p: np.ndarray, idx) -> float:
    return float(p[list(idx), 2].mean())


def _eye_line(p: np.ndarray) -> float:
    return _y(p, EYE_CORNERS)


# name -> function of the canonical landmarks; y grows downwards, so "up" measures are negated heights.
MEASURES = {
    "inner_brow_up": lambda p: _eye_line(p) - _y(p, INNER_BROW),  # AU01
    "outer_brow_up": lambda p: _eye_line(p) - _y(p, OUTER_BROW),  # AU02
    "brow_down": lambda p: _y(p, WHOLE_BROW) - _eye_line(p),  # AU04
    "brow_squeeze": lambda p: _x(p, RIGHT_INNER_BROW) - _x(p, LEFT_INNER_BROW),  # AU04: brows drawn together
    "upper_lid_up": lambda p: _eye_line(p) - _y(p, UPPER_LIDS),  # AU05
    "lower_lid_up": lambda p: _eye_line(p) - _y(p, LOWER_LIDS),  # AU06, AU07
    "eye_closed": lambda p: _y(p, UPPER_LIDS[::3]) - _y(p, LOWER_LIDS[::3]),  # AU45: minus the lid gap
    "cheek_up": lambda p: _eye_line(p) - _y(p, UPPER_CHEEKS),  # AU06
    "nose_wing_up": lambda p: _eye_line(p) - _y(p, NOSE_WINGS),  # AU09
    "upper_lip_up": lambda p: _y(p, NOSE_TIP) - _y(p, UPPER_LIP_TOP),  # AU10: nose-to-lip distance shrinks
    "corner_up": lambda p: _y(p, LIP_MIDLINE) - _y(p, LIP_CORNERS),  # AU12 (its negation: AU15)
    "corner_back": lambda p: _z(p, LIP_CORNERS) - _z(p, NOSE_TIP),  # AU14: corners pulled back into the cheeks
    "mouth_wide": lambda p: _x(p, LIP_CORNERS[1:]) - _x(p, LIP_CORNERS[:1]),  # AU20
    "lips_thin": lambda p: (_y(p, UPPER_LIP_TOP[:1]) - _y(p, UPPER_INNER[:1]))
    + (_y(p, LOWER_INNER[:1]) - _y(p, LIP_MIDLINE[1:])),  # AU23: minus the two lips' heights
    "lips_apart": lambda p: _y(p, LOWER_INNER) - _y(p, UPPER_INNER),  # AU25
    "chin_up": lambda p: -_y(p, LOWER_LIP_AND_CHIN),  # AU17
    "jaw_down": lambda p: _y(p, CHIN),  # AU26
}
MEASURE_NAMES = tuple(MEASURES)


def region_measures(landmarks: np.ndarray) -> np.ndarray:
    """(len(MEASURE_NAMES),) measures of one face, from its (478, 3) landmarks in image pixels."""
    p = canonical(landmarks)
    return np.array([fn(p) for fn in MEASURES.values()])
