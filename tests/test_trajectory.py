"""Test-time AU trajectories: hand-made clips with exact answers, and ULME's re-encoding against the shipped pickles."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from catalog.au_schema import N2ME_18, OPENFACE_17, OPENFACE_AUS, OPENFACE_PRESENCE
from data.au_table import load_au_table
from media.images import list_images, natural_key
from openface.csv_io import read_openface_csv
from solvers.trajectory import (
    TRAJECTORY_MODES,
    apex_triangle,
    build_trajectory,
    find_apex,
    linear_fit,
    magnify,
    presence_majority_mask,
    re_encode,
    relative_to_onset,
    smooth_curves,
)

# Three frames, two AUs; the sums 1, 4, 2 put the apex at frame 1.
CLIP = np.array([[1.0, 0.0],
                 [3.0, 1.0],
                 [2.0, 0.0]])


def frozen(arr):
    """A read-only copy: any in-place write by the code under test raises."""
    out = np.array(arr, dtype=np.float64)
    out.setflags(write=False)
    return out


def presence_rows(on_counts: dict[str, int], n_frames: int) -> np.ndarray:
    """(T, 18) OpenFace presence flags where AU `name` is on in its first `on_counts[name]` frames."""
    flags = np.zeros((n_frames, len(OPENFACE_PRESENCE)))
    for name, count in on_counts.items():
        flags[:count, OPENFACE_PRESENCE.index(name)] = 1.0
    return flags


# --- presence_majority_mask -------------------------------------------------------------------------------------

def test_majority_mask_keeps_ties_and_drops_minorities():
    flags = presence_rows({"AU01": 4, "AU02": 2, "AU04": 1, "AU45": 3}, n_frames=4)
    mask = presence_majority_mask(flags, OPENFACE_PRESENCE, OPENFACE_AUS)
    expected = np.zeros(17, dtype=bool)
    expected[[OPENFACE_AUS.index(a) for a in ("AU01", "AU02", "AU45")]] = True  # AU02: 2 of 4 = tie -> kept
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == bool


def test_majority_mask_matches_by_name_not_position():
    # AU28 (presence column 16, no intensity) is on everywhere; AU45 (presence column 17, intensity 16) is off.
    flags = presence_rows({"AU28": 5}, n_frames=5)
    mask = presence_majority_mask(flags, OPENFACE_PRESENCE, OPENFACE_AUS)
    assert not mask.any()
    # Columns handed over in another order give the same answer.
    order = list(reversed(range(len(OPENFACE_PRESENCE))))
    flags = presence_rows({"AU45": 3, "AU01": 2}, n_frames=5)
    shuffled = presence_majority_mask(flags[:, order], [OPENFACE_PRESENCE[j] for j in order], OPENFACE_AUS)
    np.testing.assert_array_equal(shuffled, presence_majority_mask(flags, OPENFACE_PRESENCE, OPENFACE_AUS))
    assert shuffled[OPENFACE_AUS.index("AU45")] and not shuffled[OPENFACE_AUS.index("AU01")]


def test_majority_mask_keeps_aus_without_presence_column():
    mask = presence_majority_mask(presence_rows({}, n_frames=2), OPENFACE_PRESENCE, N2ME_18.names)
    assert mask.shape == (18,)
    assert mask[N2ME_18.index("AU27*")] and mask.sum() == 1


def test_majority_mask_single_frame_and_input_untouched():
    flags = frozen(presence_rows({"AU12": 1}, n_frames=1))
    mask = presence_majority_mask(flags)  # OpenFace names are the defaults
    assert mask[OPENFACE_AUS.index("AU12")] and mask.sum() == 1


@pytest.mark.parametrize("flags, names, match", [
    (np.zeros((0, 18)), OPENFACE_PRESENCE, "no frames"),
    (np.zeros((3, 17)), OPENFACE_PRESENCE, "shape"),
    (np.zeros(18), OPENFACE_PRESENCE, "shape"),
    (np.full((2, 18), np.nan), OPENFACE_PRESENCE, "NaN"),
    (np.full((2, 18), 2.0), OPENFACE_PRESENCE, r"\[0, 1\]"),
    (np.zeros((2, 2)), ("AU01", "AU01"), "duplicates"),
])
def test_majority_mask_rejects_bad_input(flags, names, match):
    with pytest.raises(ValueError, match=match):
        presence_majority_mask(flags, names, OPENFACE_AUS)


# --- re_encode ----------------------------------------------------------------------------------------------------

def test_re_encode_zeroes_masked_aus_in_every_frame():
    clip = frozen(CLIP)
    out = re_encode(clip, np.array([False, True]))
    np.testing.assert_array_equal(out, [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert out.dtype == np.float64 and not np.shares_memory(out, clip)
    np.testing.assert_array_equal(re_encode(clip, np.array([True, True])), CLIP)


@pytest.mark.parametrize("mask", [np.array([True]), np.array([1, 0])])
def test_re_encode_rejects_bad_mask(mask):
    with pytest.raises(ValueError, match="mask"):
        re_encode(CLIP, mask)


# --- find_apex ----------------------------------------------------------------------------------------------------

def test_find_apex_largest_sum_first_on_ties():
    assert find_apex(frozen(CLIP)) == 1
    assert find_apex([[1.0, 1.0], [2.0, 0.0], [0.0, 0.5]]) == 0  # frames 0 and 1 tie on 2.0 -> first
    assert find_apex([[0.2, 0.3]]) == 0


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 3)), r"T == 0"),
    (np.zeros(3), "shape"),
    (np.zeros((2, 0)), "n == 0"),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), "NaN"),
    (np.array([[0.0, 1.0], [np.inf, 1.0]]), "NaN"),
])
def test_clip_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        find_apex(bad)


# --- linear_fit ---------------------------------------------------------------------------------------------------

def test_linear_fit_onset_apex_offset():
    # Sums 1, 0, 0, 9, 0, 3: apex at frame 3; the frames in between are noise the fit replaces.
    clip = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [4.0, 5.0], [0.0, 0.0], [1.0, 2.0]])
    out = linear_fit(frozen(clip))
    expected = np.array([[0.0, 1.0],
                         [4 / 3, 7 / 3],
                         [8 / 3, 11 / 3],
                         [4.0, 5.0],      # apex kept
                         [2.5, 3.5],
                         [1.0, 2.0]])     # onset and offset kept
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(linear_fit(clip, apex=3), expected, rtol=0, atol=1e-12)


def test_linear_fit_apex_at_first_frame_is_one_line_to_the_end():
    clip = np.array([[4.0], [0.0], [3.0], [0.0], [2.0]])
    np.testing.assert_array_equal(linear_fit(clip), [[4.0], [3.5], [3.0], [2.5], [2.0]])
    np.testing.assert_array_equal(linear_fit(clip, apex=0), [[4.0], [3.5], [3.0], [2.5], [2.0]])


def test_linear_fit_apex_at_last_frame_is_one_line_from_the_start():
    clip = np.array([[0.0, 1.0], [5.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 4.0]])
    np.testing.assert_array_equal(linear_fit(clip, apex=4), [[0.0, 1.0], [0.5, 1.75], [1.0, 2.5], [1.5, 3.25],
                                                             [2.0, 4.0]])


@pytest.mark.parametrize("clip, apex", [([[1.5, 0.5]], None), ([[1.5, 0.5]], 0),
                                        ([[1.0, 0.0], [0.0, 3.0]], None), ([[1.0, 0.0], [0.0, 3.0]], 0)])
def test_linear_fit_short_clips_unchanged(clip, apex):
    np.testing.assert_array_equal(linear_fit(frozen(clip), apex=apex), clip)


@pytest.mark.parametrize("apex", [-1, 3, 1.0, True, "1"])
def test_linear_fit_rejects_bad_apex(apex):
    with pytest.raises(ValueError, match="apex"):
        linear_fit(CLIP, apex=apex)


def test_linear_fit_accepts_numpy_integer_apex():
    np.testing.assert_array_equal(linear_fit(CLIP, apex=np.int64(1)), CLIP)  # 3 knots on 3 frames = unchanged


# --- apex_triangle ------------------------------------------------------------------------------------------------

TEMPLATE = np.array([1.0, 0.0])
PEAK = np.array([3.0, 2.0])


def test_apex_triangle_middle():
    out = apex_triangle(frozen(TEMPLATE), frozen(PEAK), 5, 2)
    np.testing.assert_array_equal(out, [[1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [2.0, 1.0], [1.0, 0.0]])
    out = apex_triangle(TEMPLATE, PEAK, 4, 1)
    np.testing.assert_array_equal(out, [[1.0, 0.0], [3.0, 2.0], [2.0, 1.0], [1.0, 0.0]])


def test_apex_triangle_apex_at_the_ends():
    np.testing.assert_array_equal(apex_triangle(TEMPLATE, PEAK, 3, 0), [[3.0, 2.0], [2.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(apex_triangle(TEMPLATE, PEAK, 3, 2), [[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    np.testing.assert_array_equal(apex_triangle(TEMPLATE, PEAK, 2, 0), [[3.0, 2.0], [1.0, 0.0]])
    np.testing.assert_array_equal(apex_triangle(TEMPLATE, PEAK, 2, 1), [[1.0, 0.0], [3.0, 2.0]])


def test_apex_triangle_single_frame_is_the_apex():
    out = apex_triangle(TEMPLATE, PEAK, 1, 0)
    np.testing.assert_array_equal(out, [PEAK])
    assert out.dtype == np.float64


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_frames=0, apex=0), "n_frames"),
    (dict(n_frames=3, apex=3), "apex"),
    (dict(n_frames=3, apex=-1), "apex"),
    (dict(n_frames=2.5, apex=0), "n_frames"),
])
def test_apex_triangle_rejects_bad_frames(kwargs, match):
    with pytest.raises(ValueError, match=match):
        apex_triangle(TEMPLATE, PEAK, **kwargs)


def test_apex_triangle_rejects_mismatched_vectors():
    with pytest.raises(ValueError, match="template_aus"):
        apex_triangle(np.zeros(3), PEAK, 3, 1)
    with pytest.raises(ValueError, match="apex_aus"):
        apex_triangle(TEMPLATE, np.zeros((1, 2)), 3, 1)
    with pytest.raises(ValueError, match="NaN"):
        apex_triangle(TEMPLATE, np.array([np.nan, 0.0]), 3, 1)


# --- magnify ------------------------------------------------------------------------------------------------------

def test_magnify_multiplies_and_clips_to_raw_range():
    clip = frozen([[1.0, 2.0], [3.0, -0.5]])
    np.testing.assert_array_equal(magnify(clip, 2.0), [[2.0, 4.0], [5.0, 0.0]])
    np.testing.assert_array_equal(magnify(clip, 1.0), [[1.0, 2.0], [3.0, 0.0]])
    np.testing.assert_array_equal(magnify(clip, 0.5), [[0.5, 1.0], [1.5, 0.0]])


@pytest.mark.parametrize("factor", [-1.0, np.nan, np.inf])
def test_magnify_rejects_bad_factor(factor):
    with pytest.raises(ValueError, match="factor"):
        magnify(CLIP, factor)


# --- relative_to_onset --------------------------------------------------------------------------------------------

def test_relative_to_onset_moves_the_template_by_the_clip_motion():
    clip = frozen([[2.0, 1.0], [3.0, 0.5], [2.5, 1.0]])
    template = frozen([0.5, 0.25])
    np.testing.assert_array_equal(relative_to_onset(clip, template),
                                  [[0.5, 0.25], [1.5, 0.0], [1.0, 0.25]])  # 0.25 - 0.5 clipped at 0
    np.testing.assert_array_equal(relative_to_onset(clip, template, onset=1),
                                  [[0.0, 0.75], [0.5, 0.25], [0.0, 0.75]])


def test_relative_to_onset_rejects_bad_input():
    with pytest.raises(ValueError, match="onset"):
        relative_to_onset(CLIP, TEMPLATE, onset=3)
    with pytest.raises(ValueError, match="template_aus"):
        relative_to_onset(CLIP, np.zeros(3))


# --- smooth -------------------------------------------------------------------------------------------------------

def test_smooth_centred_moving_average_with_truncated_edges():
    clip = frozen([[0.0, 1.0], [3.0, 1.0], [6.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(smooth_curves(clip, 3), [[1.5, 1.0], [3.0, 1.0], [3.0, 1.0], [3.0, 1.0]],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(smooth_curves(clip, 5), [[3.0, 1.0], [2.25, 1.0], [2.25, 1.0], [3.0, 1.0]],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(smooth_curves(clip, 99), np.full((4, 2), [2.25, 1.0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("window", [-3, 0, 1])
def test_smooth_small_window_is_a_copy(window):
    clip = frozen(CLIP)
    out = smooth_curves(clip, window)
    np.testing.assert_array_equal(out, CLIP)
    assert not np.shares_memory(out, clip)


def test_smooth_single_frame_and_bad_windows():
    np.testing.assert_array_equal(smooth_curves([[1.0, 2.0]], 3), [[1.0, 2.0]])
    for window in (2, 4, 3.0, True):
        with pytest.raises(ValueError, match="window"):
            smooth_curves(CLIP, window)


# --- build_trajectory ---------------------------------------------------------------------------------------------

def test_modes_constant():
    assert TRAJECTORY_MODES == ("1v1", "linear_fitting", "apex_frame")


def test_build_1v1_defaults_return_the_clip_and_its_apex():
    clip = frozen(CLIP)
    targets, apex = build_trajectory(clip)
    np.testing.assert_array_equal(targets, CLIP)
    assert apex == 1 and not np.shares_memory(targets, clip)


def test_build_re_encodes_before_finding_the_apex():
    # Frame 0 has the largest raw sum (AU0), but AU0 is masked out, so the apex is AU1's peak at frame 2.
    clip = frozen([[4.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    targets, apex = build_trajectory(clip, mode="linear_fitting", re_code_mask=np.array([False, True]))
    assert apex == 2
    np.testing.assert_array_equal(targets, [[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 0.0]])


def test_build_linear_fitting_with_given_apex_and_factor():
    clip = np.array([[0.0], [1.0], [0.0], [0.0], [2.0]])
    targets, apex = build_trajectory(clip, mode="linear_fitting", apex=2, factor=2.0)
    assert apex == 2
    np.testing.assert_array_equal(targets, [[0.0], [0.0], [0.0], [2.0], [4.0]])


def test_build_apex_frame_relative():
    clip = frozen([[1.0, 1.0], [2.0, 1.5], [3.0, 2.0], [2.0, 1.0], [1.0, 1.0]])
    template = frozen([0.5, 0.0])
    targets, apex = build_trajectory(clip, template_aus=template, mode="apex_frame", au_mode="relative")
    assert apex == 2
    # Relative apex AUs: template + (frame 2 - frame 0) = [2.5, 1.0]; ramps from and back to the template.
    np.testing.assert_array_equal(targets, [[0.5, 0.0], [1.5, 0.5], [2.5, 1.0], [1.5, 0.5], [0.5, 0.0]])


def test_build_apex_frame_absolute_uses_the_clip_apex_aus():
    targets, apex = build_trajectory(CLIP, template_aus=TEMPLATE, mode="apex_frame")
    assert apex == 1
    np.testing.assert_array_equal(targets, [TEMPLATE, CLIP[1], TEMPLATE])


def test_build_smooths_before_the_apex_and_clips_the_output():
    # A one-frame spike at frame 1 loses to the broad bump around frame 4 once smoothed.
    clip = np.array([[0.0], [3.0], [0.0], [2.0], [2.0], [2.0], [0.0]])
    assert build_trajectory(clip)[1] == 1
    targets, apex = build_trajectory(clip, smooth_window=3, factor=10.0)
    assert apex == 4
    np.testing.assert_allclose(targets[:, 0], np.minimum(10.0 * smooth_curves(clip, 3)[:, 0], 5.0), rtol=0, atol=1e-12)
    assert targets.max() == 5.0


def test_build_single_frame_every_mode():
    clip = np.array([[1.0, 2.0]])
    for mode in TRAJECTORY_MODES:
        targets, apex = build_trajectory(clip, template_aus=np.zeros(2), mode=mode)
        assert apex == 0
        np.testing.assert_array_equal(targets, clip)


@pytest.mark.parametrize("kwargs, match", [
    (dict(mode="1V1"), "mode"),
    (dict(au_mode="delta"), "au_mode"),
    (dict(mode="apex_frame"), "template_aus"),
    (dict(au_mode="relative"), "template_aus"),
    (dict(template_aus=np.zeros(3)), "template_aus"),
    (dict(apex=3), "apex"),
    (dict(re_code_mask=np.array([True])), "mask"),
    (dict(factor=-2.0), "factor"),
])
def test_build_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_trajectory(CLIP, **kwargs)


def test_build_rejects_empty_clip():
    with pytest.raises(ValueError, match="T == 0"):
        build_trajectory(np.zeros((0, 17)))


# --- regression: ULME's re-encoding reproduces the shipped MEGC2021 pickles ----------------------------------------

MEGC_FOLDERS = [f"{db}_{emotion}_{face}" for db in ("SAMM", "casme2")
                for emotion in ("Negative", "Positive", "Surprise") for face in ("asianFemale", "westMale")]


def test_megc_has_the_twelve_folders(megc_root):
    assert sorted(p.name for p in megc_root.iterdir() if p.is_dir()) == sorted(MEGC_FOLDERS)


def read_single_row(path):
    rows = read_openface_csv(path)
    assert rows.intensity.shape == (1, 17), f"{path}: one face per frame expected"
    return rows.intensity[0], rows.presence[0]


@pytest.mark.parametrize("folder_name", MEGC_FOLDERS)
def test_re_encoding_reproduces_shipped_pickle(megc_root, folder_name):
    folder = megc_root / folder_name
    # test_ids.csv lists the clip's frame images (not the template) in frame order, one per line.
    with open(folder / "test_ids.csv", newline="") as fh:
        ids = [row[0] for row in csv.reader(fh) if row]
    frames = sorted((p.stem for p in (folder / "imgs").iterdir()), key=natural_key)
    assert [name.rsplit(".", 1)[0] for name in ids] == frames
    assert sorted((p.stem for p in (folder / "csvs").glob("*.csv")), key=natural_key) == frames

    per_frame = [read_single_row(folder / "csvs" / f"{name}.csv") for name in frames]
    intensity = np.stack([i for i, _ in per_frame])
    presence = np.stack([p for _, p in per_frame])
    mask = presence_majority_mask(presence, OPENFACE_PRESENCE, OPENFACE_AUS)
    expected = re_encode(intensity, mask)

    table = load_au_table(folder / "aus_openface.pkl", OPENFACE_17)
    (template_name,) = list_images(folder / "imgs2")  # one template face
    assert set(table) == set(frames) | {template_name}
    for t, name in enumerate(frames):
        np.testing.assert_allclose(table[name], expected[t], rtol=0, atol=1e-6, err_msg=f"{folder_name}/{name}")
    # The template's AUs are stored as OpenFace measured them: not masked.
    template_aus, _ = read_single_row(folder / "csvs2" / f"{template_name}.csv")
    np.testing.assert_allclose(table[template_name], template_aus, rtol=0, atol=1e-6)

    # The check has teeth: in every folder the mask zeroes some non-zero intensities.
    assert not mask.all() and np.abs(intensity - expected).max() > 0.1
    # Tie rule: no AU is present in exactly half of the frames here, so >= 0.5 and > 0.5 both match; the
    # implementation keeps ties as ULME does (it zeroes only when the mean flag is < 0.5).
    fraction = presence[:, [OPENFACE_PRESENCE.index(a) for a in OPENFACE_AUS]].mean(axis=0)
    assert not np.any(fraction == 0.5)
