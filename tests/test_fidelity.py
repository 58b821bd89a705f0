"""The motion-amplitude metric on frames that move by a known amount, and the onset / artifact measures
(metrics/fidelity.py) on a template with a known leak or streak painted in."""
import numpy as np
import pytest

from metrics import fidelity, motion

SIZE = 64


def _texture(seed: int = 0) -> np.ndarray:
    """A smooth random grey texture (flow needs structure to follow)."""
    import cv2

    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 255, (SIZE, SIZE)), (0, 0), 2.0)


def _masks() -> dict[str, np.ndarray]:
    mouth = np.zeros((SIZE, SIZE), bool)
    mouth[36:56, 16:48] = True
    return {"mouth": mouth}


def _clip(peak_shift: float) -> np.ndarray:
    """(9, H, W) uint8: the mouth box's texture slides right by up to ``peak_shift`` px and back."""
    import cv2

    base = _texture()
    frames = []
    for shift in peak_shift * np.array([0, 0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25, 0]):
        moved = cv2.warpAffine(base, np.float32([[1, 0, shift], [0, 1, 0]]), (SIZE, SIZE),
                               borderMode=cv2.BORDER_REFLECT)
        frame = base.copy()
        frame[_masks()["mouth"]] = moved[_masks()["mouth"]]
        frames.append(np.clip(np.round(frame), 0, 255).astype(np.uint8))
    return np.stack(frames)


def _amplitude_error(source_shift: float, result_shift: float) -> float:
    valid = np.ones(9, bool)
    src = motion.region_profiles(_clip(source_shift), valid, _masks())["flow"]
    gen = motion.region_profiles(_clip(result_shift), valid, _masks())["flow"]
    return motion.amplitude_log_ratio(src, gen)


def test_amplitude_error_is_low_for_the_same_motion_and_high_for_none_or_twice():
    same = _amplitude_error(2.0, 2.0)
    frozen = _amplitude_error(2.0, 0.0)
    double = _amplitude_error(2.0, 4.0)
    half = _amplitude_error(2.0, 1.0)
    assert same < 0.05
    assert frozen > 3.0  # a result that does not move is the worst case
    assert double == pytest.approx(np.log(2), abs=0.2) and half == pytest.approx(np.log(2), abs=0.2)
    assert min(frozen, double, half) > 10 * same


def test_onset_fidelity_drops_when_the_onset_carries_someone_elses_wrinkles():
    template = _texture(1)
    expression = _masks()["mouth"]
    valid = np.ones(2, bool)
    clean = np.stack([template, template])
    assert fidelity.onset_fidelity(clean, template, expression, valid) == pytest.approx(1.0)
    leaked = clean.copy()
    leaked[0, 40:52:3, 18:46] -= 60  # dark horizontal lines in the region: the driving person's frown
    assert fidelity.onset_fidelity(leaked, template, expression, valid) < 0.9
    assert fidelity.onset_fidelity(clean, None, expression, valid) is None


def test_artifact_rate_ignores_small_motion_and_tone_but_counts_a_painted_streak():
    import cv2

    template = _texture(2)
    expression = _masks()["mouth"]
    valid = np.ones(1, bool)
    moved = cv2.warpAffine(template, np.float32([[1, 0, 2], [0, 1, 1]]), (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    assert fidelity.artifact_rate(moved[None], template, expression, valid) < 0.01
    brighter = template + 40.0  # a uniform tone shift is removed by the offset correction
    assert fidelity.artifact_rate(brighter[None], template, expression, valid) < 0.01
    streak = template.copy()
    streak[44:47, 18:46] = 255.0  # a white bar across the region, brighter than anything near it
    rate = fidelity.artifact_rate(streak[None], template, expression, valid)
    assert 0.05 < rate < 0.3
    per_frame = fidelity.per_frame_artifacts(np.stack([template, streak]), template, expression,
                                             np.array([True, False]))
    assert per_frame[0] == 0.0 and np.isnan(per_frame[1])  # frames without a face are not scored
