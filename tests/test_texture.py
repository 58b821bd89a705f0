"""The texture metric (metrics/texture.py) on synthetic images whose answer is known: a result that adds furrows
following the source's must correlate, a pure warp with the same motion must not, and the same result against a
source whose furrows come at another time (the wrong-clip control) must score clearly lower."""
import numpy as np
import pytest

from metrics import texture
from metrics.motion import REGION_LANDMARKS

SIZE = 128
FRAMES = 20


def skin(seed: int) -> np.ndarray:
    """A face-like grey texture: smoothed noise around mid-grey (a different 'person' per seed)."""
    import cv2

    noise = np.random.default_rng(seed).normal(0, 40, (SIZE, SIZE)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 1.5).astype(np.float64) + 128


def furrows(depth: float = 25.0) -> np.ndarray:
    """Five horizontal dark lines, 2 px wide, across the forehead box (AU1+2 lines)."""
    import cv2

    lines = np.zeros((SIZE, SIZE), np.float32)
    for y in range(40, 80, 8):
        lines[y:y + 2, 35:95] = -depth
    return cv2.GaussianBlur(lines, (0, 0), 0.7).astype(np.float64)


def raise_brows(image: np.ndarray, px: float) -> np.ndarray:
    """A smooth warp: the upper face moves up by ``px``, fading to no motion at row 100 (bilinear, as warps do)."""
    import cv2

    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dy = (px * np.clip((100 - yy) / 60, 0, 1)).astype(np.float32)
    return cv2.remap(image.astype(np.float32), xx, yy + dy, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT).astype(np.float64)


def bump(apex: float, width: float) -> np.ndarray:
    t = np.arange(FRAMES)
    return np.exp(-0.5 * ((t - apex) / width) ** 2)


def clip(face: np.ndarray, curve: np.ndarray, with_furrows: bool) -> np.ndarray:
    """Frames moving with ``curve`` (2 px brow raise at the apex), with furrows deepening along it or not."""
    lines = furrows()
    return np.stack([raise_brows(face + (c * lines if with_furrows else 0.0), 2.0 * c) for c in curve])


@pytest.fixture(scope="module")
def profiles():
    masks = {"forehead": np.zeros((SIZE, SIZE), bool)}
    masks["forehead"][28:92, 28:100] = True
    valid = np.ones(FRAMES, bool)
    right, wrong = bump(12, 3), bump(4, 2)  # the source's timing, and another clip's

    def measure(frames):
        return texture.texture_profiles(frames, valid, masks)

    return {"source": measure(clip(skin(1), right, True)),
            "other_source": measure(clip(skin(3), wrong, True)),
            "furrowed": measure(clip(skin(2), right, True)),
            "pure_warp": measure(clip(skin(2), right, False))}


# Measured here (OpenCV's blur, flow and remap): furrowed r 0.998, pure warp r -0.38, furrowed against the other
# timing r -0.35. The bounds below leave margins far wider than any difference between CPUs' SIMD paths could move them.


def test_furrows_that_follow_the_source_correlate(profiles):
    assert profiles["source"]["forehead"][0] == 0.0  # change from onset
    assert np.nanmax(profiles["source"]["forehead"]) > 0.5  # furrows add fine detail that no motion explains
    assert texture.texture_correlation(profiles["source"], profiles["furrowed"]) > 0.95


def test_a_pure_warp_with_the_same_motion_does_not(profiles):
    # the flow explains the 2 px warp: what is left changes by a few per cent of the onset's energy only ...
    assert np.nanmax(np.abs(profiles["pure_warp"]["forehead"])) < 0.1
    # ... and that rest (the warp's bilinear blur) does not follow the furrows' timing
    assert texture.texture_correlation(profiles["source"], profiles["pure_warp"]) < 0.3


def test_the_wrong_clip_control_scores_lower(profiles):
    right = texture.texture_correlation(profiles["source"], profiles["furrowed"])
    wrong = texture.texture_correlation(profiles["other_source"], profiles["furrowed"])
    assert wrong < right - 0.5


def test_still_result_scores_zero_and_still_source_gives_no_value():
    changing = {"forehead": np.array([0.0, 0.2, 0.5, 0.2, 0.0])}
    still = {"forehead": np.zeros(5)}
    assert texture.texture_correlation(changing, still) == 0.0
    assert texture.texture_correlation(still, changing) is None


def test_detail_band_ignores_flat_areas_and_shading():
    flat = np.full((SIZE, SIZE), 90.0)
    ramp = np.tile(np.linspace(40, 200, SIZE), (SIZE, 1))  # the slow shading of a face's shape
    assert np.abs(texture.detail(flat)).max() < 1e-3
    assert np.abs(texture.detail(ramp)[8:-8, 8:-8]).max() < 0.05  # away from the border


def test_frames_without_a_face_are_nan():
    frames = np.stack([skin(1)] * 4)
    valid = np.array([False, True, True, False])
    masks = {"mouth": np.ones((SIZE, SIZE), bool)}
    profile = texture.texture_profiles(frames, valid, masks)["mouth"]
    assert np.isnan(profile[[0, 3]]).all() and np.allclose(profile[[1, 2]], 0.0, atol=1e-3)


def test_texture_masks_cover_their_landmarks():
    rng = np.random.default_rng(0)
    landmarks = np.column_stack([rng.uniform(30, 98, 478), rng.uniform(30, 98, 478), np.zeros(478)])
    masks = texture.texture_masks(landmarks, SIZE)
    assert set(masks) == set(texture.TEXTURE_REGIONS)
    for region, outlines in texture.TEXTURE_LANDMARKS.items():
        for i in {i for outline in outlines for i in outline}:
            x, y = np.round(landmarks[i, :2]).astype(int)
            assert masks[region][y, x], (region, i)
    # the forehead region contains both brows, as the motion regions define them
    brows = {i for outline in REGION_LANDMARKS["brows"] for i in outline}
    assert brows <= set(texture.TEXTURE_LANDMARKS["forehead"][0])
