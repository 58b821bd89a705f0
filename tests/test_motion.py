"""Motion transfer (motion/): head-motion removal, the canonical frame, retargeting and the dense warp.

Synthetic faces with known motion: exact numbers come from closed forms, so tolerances are float64 round-off
(1e-9) unless a test says otherwise.
"""
import numpy as np
import pytest

from motion.canonical import canonical_frame, fit_similarity_3d, remove_head_motion


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("yxz", [yaw_deg, pitch_deg, roll_deg], degrees=True).as_matrix()


def random_face(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(478, 3)) * 40 + np.array([128.0, 128.0, 0.0])


def test_similarity_3d_recovers_a_known_transform():
    face = random_face()
    moved = 1.3 * face @ rotation(20, -10, 5).T + np.array([5.0, -6.0, 7.0])
    fit = fit_similarity_3d(moved, face)
    assert fit.scale == pytest.approx(1 / 1.3, rel=1e-9)
    np.testing.assert_allclose(fit.apply(moved), face, atol=1e-9)


def test_head_motion_only_leaves_nothing_but_expression_stays():
    face = random_face()
    moved = 0.9 * face @ rotation(15, 8, -4).T + np.array([3.0, 1.0, 0.0])
    smile = face.copy()
    smile[[61, 291], 1] -= 2.0  # mouth corners up: not a stable point, so it must survive the head fit
    still = remove_head_motion(np.stack([face, moved, 0.9 * smile @ rotation(15, 8, -4).T]))
    np.testing.assert_allclose(still[1], face, atol=1e-9)
    np.testing.assert_allclose(still[2][[61, 291]] - face[[61, 291]], [[0, -2, 0], [0, -2, 0]], atol=1e-9)


def test_canonical_frame_is_eye_based_and_invertible():
    face = random_face()
    face[33, :2], face[263, :2] = (100.0, 120.0), (160.0, 120.0)
    frame = canonical_frame(face)
    np.testing.assert_allclose(frame.to_canonical(face[[33, 263]]), [[-0.5, 0.0], [0.5, 0.0]], atol=1e-12)
    np.testing.assert_allclose(frame.to_pixels(frame.to_canonical(face)), face[:, :2], atol=1e-9)
    assert frame.vectors_to_canonical(np.array([0.0, 6.0]))[1] == pytest.approx(0.1)  # down the face is +y
