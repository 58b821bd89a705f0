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


# --- the dense warp, on a synthetic face whose motion is known -------------------------------------------------

def face_layout(size: int = 256) -> np.ndarray:
    """A real face's 478-landmark layout (the AU primitives' neutral reference) placed in a size x size image."""
    from motion.primitives import load_primitives

    reference = load_primitives().reference
    return np.concatenate([reference * size * 0.4 + size / 2, np.zeros((478, 1))], 1)


def smooth_image(size: int = 256) -> np.ndarray:
    """Slow sinusoids: bilinear sampling of them is exact to well under a grey level."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    channels = [128 + 100 * np.sin(x / 23.0 + k) * np.cos(y / 31.0 - k) for k in range(3)]
    return np.stack(channels, -1).round().astype(np.uint8)


def bilinear(image: np.ndarray, x: float, y: float) -> np.ndarray:
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    img = image.astype(np.float64)
    return ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x0 + 1] + (1 - fx) * fy * img[y0 + 1, x0]
            + fx * fy * img[y0 + 1, x0 + 1])


def test_zero_motion_returns_the_template_exactly():
    from motion.warp import TemplateWarp

    image = smooth_image()
    warp = TemplateWarp(image, face_layout())
    np.testing.assert_array_equal(warp.render(np.zeros((478, 2))), image)
    np.testing.assert_array_equal(warp.render(np.zeros((478, 2)), np.zeros((256, 256, 3))), image)


def test_a_known_displacement_moves_the_landmarks_by_it():
    from motion.warp import FACE_OVAL, TemplateWarp

    image, layout = smooth_image(), face_layout()
    warp = TemplateWarp(image, layout)
    rng = np.random.default_rng(3)
    moves = np.zeros((478, 2))
    inner = [i for i in range(468) if i not in FACE_OVAL]
    moves[inner] = rng.uniform(-1.5, 1.5, size=(len(inner), 2))  # micro-expression sized
    out = warp.render(moves)
    # What lay at landmark i now lies at landmark i + its displacement (up to the fixed-point inversion and
    # bilinear resampling: a grey level or two on these slow sinusoids; a wrong sign or a missing move is tens).
    picks = [61, 291, 105, 334, 159, 386, 13, 14, 1, 152 if 152 not in FACE_OVAL else 17]
    for i in picks:
        x, y = layout[i, :2] + moves[i]
        expected = bilinear(image, *layout[i, :2])
        assert np.abs(bilinear(out, x, y) - expected).max() < 4.0, i
    moved_field = warp.field(moves)
    for i in picks:  # the forward field at a landmark is its displacement exactly (a mesh vertex)
        x, y = np.round(layout[i, :2]).astype(int)
        assert np.linalg.norm(moved_field[y, x] - moves[i]) < 1.5 + 1e-6  # vertex off the pixel grid: neighbours


def test_pixels_outside_the_face_do_not_move():
    from motion.warp import OUTER_RING, TemplateWarp

    image, layout = smooth_image(), face_layout()
    warp = TemplateWarp(image, layout)
    moves = np.random.default_rng(5).uniform(-2, 2, size=(478, 2))
    field = np.linalg.norm(warp.field(moves), axis=-1)
    from motion.warp import FACE_OVAL

    oval = layout[list(FACE_OVAL), :2]
    centre = oval.mean(0)
    reach = np.linalg.norm(oval - centre, axis=1).max() * OUTER_RING
    y, x = np.mgrid[0:256, 0:256]
    outside = np.hypot(x - centre[0], y - centre[1]) > reach + 1
    assert outside.any() and field[outside].max() == 0.0
    out = warp.render(moves)
    assert np.array_equal(out[outside], image[outside])


def test_closed_lips_can_part():
    from motion.warp import TemplateWarp

    layout = face_layout()
    layout[14, :2] = layout[13, :2]  # closed mouth: the inner-lip points coincide
    warp = TemplateWarp(smooth_image(), layout)
    moves = np.zeros((478, 2))
    moves[13], moves[14] = (0, -1.5), (0, 1.5)
    field = warp.field(moves)
    x, y = np.round(layout[13, :2]).astype(int)
    assert field[y - 1, x, 1] < -0.3 and field[y + 1, x, 1] > 0.3  # the upper lip rises, the lower falls


def test_texture_moves_with_the_face_and_adds():
    from motion.warp import TemplateWarp

    image = np.full((64, 64, 3), 100, np.uint8)
    layout = face_layout(64)
    warp = TemplateWarp(image, layout)
    texture = np.zeros((64, 64, 3))
    texture[30:34, 30:34] = 20.0
    out = warp.render(np.zeros((478, 2)), texture)
    assert out[31, 31, 0] == 120 and out[5, 5, 0] == 100


# --- retargeting ------------------------------------------------------------------------------------------------

def test_retargeting_is_local_a_narrow_mouth_gets_a_narrow_smile():
    from motion.retarget import retarget

    source = face_layout()[:, :2] / 100
    target = source.copy()
    # The target's face narrows smoothly towards the chin: 40 % narrower at the mouth than at the eyes.
    eyes_y, mouth_y = source[[33, 263], 1].mean(), source[[61, 291], 1].mean()
    narrowing = 1 - 0.4 * np.clip((source[:, 1] - eyes_y) / (mouth_y - eyes_y), 0, 1.5)
    centre_x = source[[33, 263], 0].mean()
    target[:, 0] = centre_x + (source[:, 0] - centre_x) * narrowing
    smile = np.zeros((1, 478, 2))
    smile[0, [61, 291]] = [[-0.1, -0.05], [0.1, -0.05]]  # corners out and up
    brow = np.zeros((1, 478, 2))
    brow[0, 105] = [0.0, -0.05]
    moved = retarget(smile, source, target)[0]
    assert 0.1 * 0.4 < moved[291, 0] < 0.1 * 0.8 and -0.1 * 0.8 < moved[61, 0] < -0.1 * 0.4  # narrower
    assert moved[291, 1] == pytest.approx(-0.05, abs=0.015)  # height untouched
    np.testing.assert_allclose(retarget(brow, source, target)[0, 105], [0.0, -0.05], atol=0.005)  # brows unchanged
    np.testing.assert_allclose(retarget(smile, source, source), smile, atol=1e-9)  # same face: identity


# --- the driving clip -------------------------------------------------------------------------------------------

def test_lost_faces_are_filled_counted_and_too_many_are_an_error():
    from motion.driving import FaceLostError, clip_motion

    face = random_face()
    clip = np.stack([face] * 20)
    found = np.ones(20, bool)
    found[[4, 5]] = False
    clip[[4, 5]] = 0.0
    motion = clip_motion(clip, 200.0, found, "clipA")
    assert motion.filled_frames == [4, 5]
    assert np.abs(motion.displacements).max() < 1e-9  # filled from identical neighbours: no motion invented
    found[:10] = False
    with pytest.raises(FaceLostError, match=r"clipA: no face found in 10 of 20 frames \(0, 1, 2"):
        clip_motion(clip, 200.0, found, "clipA")


def test_temporal_filter_is_frame_rate_aware():
    from motion.driving import smooth_over_time

    noise = np.random.default_rng(0).normal(size=(400, 1))
    assert smooth_over_time(noise, 200.0).std() < 0.35 * noise.std()  # 5 frames at 200 fps
    np.testing.assert_array_equal(smooth_over_time(noise, 10.0), noise)  # a quarter of a frame at 10 fps: none


# --- real faces (MediaPipe): head motion only, and a template without a face -----------------------------------

def grace_hopper(size: int = 256) -> np.ndarray:
    """A face photo every install has (matplotlib's sample data), as the demo uses."""
    import matplotlib.cbook as cbook

    from media.images import load_rgb

    return load_rgb(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), size)


@pytest.mark.numeric
def test_a_clip_with_head_motion_only_leaves_the_template_still():
    import cv2

    from motion.transfer import TemplateMotion, motion_of_clip

    face = grace_hopper(256)
    frames = []
    for k in range(12):  # the first frame shifted by up to 6 px and rotated by up to 4 degrees
        m = cv2.getRotationMatrix2D((128, 128), 4.0 * k / 11, 1.0)
        m[:, 2] += (6.0 * k / 11, -3.0 * k / 11)
        frames.append(cv2.warpAffine(face, m, (256, 256), borderMode=cv2.BORDER_REFLECT))
    motion = motion_of_clip(frames, 30.0, "head only")
    template = TemplateMotion.from_image(face, "grace_hopper.jpg")
    moved = np.linalg.norm(template.from_clip(motion), axis=-1)
    # MediaPipe's landmarks on a resampled, moved copy of the same image differ by its jitter (measured on an AMD
    # EPYC: at most 1.2 px on a 256 px face, 0.25 px on average); a head-motion leak would move the face by the
    # motion itself (6-9 px). The bounds leave 2.5x and 2.4x room for other CPUs' kernels.
    assert moved.max() < 3.0 and moved.mean() < 0.6


@pytest.mark.numeric
def test_a_template_without_a_face_is_an_error_naming_the_file():
    from motion.transfer import NoTemplateFaceError, TemplateMotion

    with pytest.raises(NoTemplateFaceError, match="blank.png: no face found in the template"):
        TemplateMotion.from_image(np.full((128, 128, 3), 90, np.uint8), "blank.png")
