"""The metric functions on arrays whose right answer is known (no face models, milliseconds each)."""
from __future__ import annotations

import numpy as np
import pytest

from catalog.au_schema import OPENFACE_AUS
from metrics import au, frechet, identity, motion, quality, timeline
from metrics.inputs import attach_inputs, find_results, match, name_matches, template_keys
from metrics.pairs import parse_group
from metrics.registry import METRICS, NUMERIC, is_better, markdown_table

RNG = np.random.default_rng(0)


def me_curve(length: int = 20, apex: int = 12, peak: float = 2.0) -> np.ndarray:
    """A triangle onset -> apex -> offset, the shape of a micro-expression's AU curve."""
    t = np.arange(length, dtype=float)
    return np.where(t <= apex, t / apex, (length - 1 - t) / (length - 1 - apex)) * peak


def au_matrix(columns: dict[str, np.ndarray], length: int) -> np.ndarray:
    aus = np.zeros((length, len(OPENFACE_AUS)))
    for name, curve in columns.items():
        aus[:, OPENFACE_AUS.index(name)] = curve
    return aus


# ---------------------------------------------------------------------------------------- AU fidelity

def test_pearson_and_fisher_mean():
    x = me_curve()
    assert au.pearson_r(x, x) == pytest.approx(1.0)
    assert au.pearson_r(x, -x) == pytest.approx(-1.0)
    assert au.pearson_r(x, np.ones_like(x)) is None  # constant: undefined, not 0
    assert au.pearson_r(x[:2], x[:2]) is None
    assert au.fisher_mean([1.0, 1.0]) == pytest.approx(1.0, abs=1e-6)
    # Fisher z weighs strong correlations more than a plain mean: mean(0.9, 0.1) = 0.5 < the z-mean
    assert au.fisher_mean([0.9, 0.1]) > 0.5
    assert au.fisher_mean([], empty=None) is None and np.isnan(au.fisher_mean([]))


def test_au_correlation_ideal_flat_and_nan_frames():
    src = au_matrix({"AU12": me_curve(), "AU06": 0.5 * me_curve()}, 20)
    assert au.au_correlation(src, src) == pytest.approx(1.0, abs=1e-6)
    frozen = np.zeros_like(src)
    assert au.au_correlation(src, frozen) == pytest.approx(0.0)  # a result that does not move scores 0, not null
    gaps = src.copy()
    gaps[[3, 7]] = np.nan  # frames without a face are left out, not treated as zeros
    assert au.au_correlation(src, gaps) == pytest.approx(1.0, abs=1e-6)
    assert au.au_correlation(np.zeros_like(src), src) is None  # nothing moves in the source: no value
    assert au.au_correlation(src, np.full_like(src, np.nan)) is None  # no face in the result: absent, not 0
    assert set(au.per_au_correlation(src, src)) == {"AU06", "AU12"}


def test_au_mae():
    a = au_matrix({"AU12": me_curve()}, 20)
    assert au.au_mae(a, a) == 0.0
    assert au.au_mae(a, a + 0.5) == pytest.approx(0.5)
    b = a.copy()
    b[0] = np.nan
    assert au.au_mae(a, b) == 0.0


def test_apex_frame_ignores_blinks_and_errors():
    aus = au_matrix({"AU12": me_curve(apex=12), "AU45": me_curve(apex=4, peak=5.0)}, 20)
    assert au.apex_frame(aus) == 12  # the blink (AU45) is bigger but is not the expression
    assert au.apex_error_frames(12, 15, 20, 20) == 3
    assert au.apex_error_ms(12, 15, 20, 20, 200) == pytest.approx(15.0)
    # 41-frame source vs 21-frame result, both with the apex half-way: no error
    assert au.apex_error_frames(20, 10, 41, 21) == pytest.approx(0.0, abs=1e-9)
    assert au.apex_error_frames(20, 15, 41, 21) == pytest.approx(10.0)  # a quarter of the clip late
    assert au.apex_error_frames(None, 3, 20, 20) is None
    assert au.apex_error_ms(1, 3, 20, 20, None) is None


def test_facs_recall_counts_measurable_codes_that_rise():
    aus = au_matrix({"AU12": me_curve(peak=1.0), "AU04": me_curve(peak=0.1)}, 20)
    assert au.facs_moves([12, 4, 24], aus) == {"AU04": False, "AU12": True}
    assert au.facs_recall([12, 4, 24], aus) == pytest.approx(0.5)
    assert au.unmeasured_codes([12, 24]) == ["AU24"]
    assert au.facs_recall([24], aus) is None  # nothing measurable: absent, not 0


# ---------------------------------------------------------------------------------------- identity, Fréchet

def test_identity_distances():
    template = RNG.normal(size=128)
    frames = np.stack([template, template + 0.01, template + 1.0])
    frames[1, 0] = np.nan
    assert identity.mean_distance(template, frames[:1]) == 0.0
    assert identity.same_person_rate(template, frames) == pytest.approx(0.5)  # NaN frame excluded, 1 of 2 close
    assert identity.mean_distance(None, frames) is None


def test_frechet_distance_known_values():
    x = RNG.normal(size=(400, 4))
    assert frechet.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    shifted = x + np.array([3.0, 0, 0, 0])
    assert frechet.frechet_distance(x, shifted) == pytest.approx(9.0, rel=1e-9)  # same covariance: |mu|^2
    # diagonal covariances: sum (s1 - s2)^2 over the standard deviations
    a = RNG.normal(size=(20000, 2)) * [1.0, 2.0]
    b = RNG.normal(size=(20000, 2)) * [2.0, 2.0]
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + (a.std(0, ddof=1) - b.std(0, ddof=1)).__pow__(2).sum()
    assert frechet.frechet_distance(a, b) == pytest.approx(expected, rel=0.05)
    assert frechet.frechet_distance(x[:1], x) is None


@pytest.mark.numeric
@pytest.mark.slow
def test_frechet_distance_few_rows_in_many_dimensions(monkeypatch):
    """Fewer frames than dimensions (a clip's 2048-d Inception features) take the n x n route: the same number as
    the d x d covariance route, and 0 for identical sets."""
    real = RNG.normal(size=(12, 300)) + 0.5
    fake = RNG.normal(size=(9, 300)) * 1.5
    fast = frechet.frechet_distance(real, fake)
    assert frechet.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9)
    monkeypatch.setattr(frechet, "GRAM_MAX_ELEMENTS", 0)  # force the covariance route
    # the covariance route takes square roots of ~1e-13 eigenvalues that are 0 in exact arithmetic: 1e-8 apart
    # BLAS (OpenBLAS picks kernels by CPU): measured 2.2e-8 to 2.5e-8 relative between the routes under
    # OPENBLAS_CORETYPE=Prescott, Haswell and an AMD EPYC's own; 0 to 1.1e-13 for identical sets
    assert frechet.frechet_distance(real, fake) == pytest.approx(fast, rel=1e-6)
    assert frechet.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------- image quality

def test_ssim_psnr_and_masks():
    img = RNG.integers(0, 256, size=(64, 64)).astype(float)
    mask = np.ones((64, 64), bool)
    assert quality.masked_ssim(img, img, mask) == pytest.approx(1.0)
    noisy = np.clip(img + RNG.normal(0, 40, img.shape), 0, 255)
    assert quality.masked_ssim(img, noisy, mask) < 0.9
    assert quality.masked_psnr(img, img, mask) == quality.PSNR_CAP
    assert quality.masked_psnr(img, img + 1.0, mask) == pytest.approx(20 * np.log10(255), rel=1e-6)
    # a change confined to the masked-out area does not count
    changed = img.copy()
    changed[:20] = 0
    mask[:30] = False
    assert quality.masked_psnr(img, changed, mask) == quality.PSNR_CAP


def test_flicker_counts_only_change_beyond_the_source():
    still = np.zeros((5, 8, 8))
    static = np.ones((8, 8), bool)
    valid = np.ones(5, bool)
    change = quality.static_change(still, static, valid)
    assert np.isnan(change[0]) and np.all(change[1:] == 0)
    flickering = still.copy()
    flickering[1::2] = 6.0  # +6, -6, +6, -6 grey levels
    gen = quality.static_change(flickering, static, valid)
    assert quality.flicker(gen) == pytest.approx(6.0)
    assert quality.flicker(gen, gen) == 0.0  # the same change as the source: explained
    assert quality.flicker(change, gen) == 0.0  # steadier than the source is not penalised
    valid[2] = False
    assert np.isnan(quality.static_change(flickering, static, valid)[2:4]).all()


# ---------------------------------------------------------------------------------------- motion

def test_strain_is_zero_for_rigid_motion_and_known_for_stretch():
    shift = np.zeros((32, 32, 2), np.float32)
    shift[..., 0] = 1.5
    assert np.allclose(motion.strain_magnitude(shift), 0.0)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    stretch = np.stack([0.1 * xx, np.zeros_like(yy)], axis=-1)  # u = 0.1 x: exx = 0.1
    assert np.allclose(motion.strain_magnitude(stretch)[2:-2, 2:-2], 0.1, atol=1e-6)


def test_head_motion_is_removed_and_local_motion_kept():
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    theta, scale = 0.01, 1.02  # a small nod and approach, plus a drift
    head = np.stack([(scale * np.cos(theta) - 1) * xx - scale * np.sin(theta) * yy + 0.8,
                     scale * np.sin(theta) * xx + (scale * np.cos(theta) - 1) * yy - 0.5], axis=-1)
    local = np.zeros_like(head)
    local[40:50, 20:40, 1] = 1.0  # "the mouth" moves down
    reference = np.ones((64, 64), bool)
    reference[36:54, 16:44] = False
    residual = motion.remove_flow_head_motion((head + local).astype(np.float32), reference)
    assert np.abs(residual[reference]).max() < 1e-3
    assert residual[40:50, 20:40, 1].mean() == pytest.approx(1.0, abs=1e-3)


def test_optical_flow_finds_a_shift():
    img = np.zeros((64, 64), np.uint8)
    img[20:40, 20:40] = 200
    import cv2

    img = cv2.GaussianBlur(img, (7, 7), 2)
    moved = np.roll(img, 2, axis=1)
    for method in motion.FLOW_METHODS:
        flow = motion.optical_flow(img, moved, method)
        assert flow[25:35, 18:22, 0].mean() == pytest.approx(2.0, abs=0.5), method
    with pytest.raises(ValueError):
        motion.optical_flow(img, moved, "nope")


def test_profile_correlation_and_amplitude():
    src = {r: me_curve() * (i + 1) * 0.3 for i, r in enumerate(motion.REGIONS)}
    assert motion.profile_correlation(src, src) == pytest.approx(1.0, abs=1e-6)
    assert motion.amplitude_log_ratio(src, src) == 0.0
    double = {r: 2 * v for r, v in src.items()}
    assert motion.amplitude_log_ratio(src, double) == pytest.approx(np.log(2))
    frozen = {r: np.zeros_like(v) for r, v in src.items()}
    assert motion.profile_correlation(src, frozen) == pytest.approx(0.0)
    rotated = {r: np.roll(v, 10) for r, v in src.items()}  # half a clip out of step
    assert motion.profile_correlation(src, rotated) < 0.0


def test_region_masks_cover_their_landmarks():
    landmarks = np.zeros((478, 2))
    landmarks[:, 0] = 64
    landmarks[:, 1] = 64
    for i, (region, outlines) in enumerate(motion.REGION_LANDMARKS.items()):
        for outline in outlines:  # each region a separate horizontal band
            landmarks[list(outline)] = np.column_stack([np.linspace(30, 90, len(outline)),
                                                        np.full(len(outline), 10 + 28 * i)])
    masks = motion.region_masks(landmarks, 128)
    assert set(masks) == set(motion.REGIONS)
    for i, region in enumerate(motion.REGIONS):
        assert masks[region][10 + 28 * i, 60]
        assert not masks[region][120, 60]


# ---------------------------------------------------------------------------------------- timelines and names

def test_resample_keeps_shape_and_excluded_frames():
    curve = me_curve(length=21)
    same = timeline.resample(curve, 21)
    assert same is not None and np.array_equal(same, curve)
    half = timeline.resample(curve, 11)
    assert np.allclose(half, curve[::2])
    gaps = curve.copy()
    gaps[10] = np.nan
    assert np.isnan(timeline.resample(gaps, 11)[5])
    assert timeline.alignment_note(20, 20) is None
    assert "lengths differ" in timeline.alignment_note(40, 20)


def test_name_matching_rule():
    assert name_matches("casme2_Positive_asianFemale", "casme2_positive_asianfemale_mygan_30")
    assert name_matches("asianFemale", "casme2_Positive_asianFemale")
    assert not name_matches("asian", "casme2_Positive_asianFemale")  # not between separators
    assert not name_matches("male", "casme2_Positive_asianFemale")
    table = {"casme2_positive_asianfemale": ["A"], "asianfemale": ["T"], "casme2_positive": ["B"]}
    assert match(["casme2_Positive_asianFemale_gan"], table) == ("A", None)  # the longest key wins
    found, problem = match(["x_y"], {"x": ["1"], "y": ["2"]})
    assert found is None and "several" in problem
    assert match(["nothing"], table) == (None, None)
    assert template_keys(__import__("pathlib").Path("p/imgs2/normalized_asianFemale.jpg")) == [
        "normalized_asianFemale", "asianFemale", "p"]


def test_parse_group():
    assert parse_group("casme2_Positive_asianFemale_ganimation_30") == ("casme2", "positive")
    assert parse_group("SAMM_Surprise_westMale") == ("samm", "surprise")
    assert parse_group("sub01_EP02_01f", "c_sub01_happiness") == ("all", "happiness")
    assert parse_group("clip7") == ("all", "all")


# ---------------------------------------------------------------------------------------- registry

def test_registry_entries_are_documented():
    assert len(METRICS) >= 15
    for name, m in METRICS.items():
        assert m.name == name
        assert m.direction in ("higher", "lower", "info")
        assert m.doc and m.value_range and m.needs and "|" not in m.doc
        assert m.fn is None or callable(m.fn)
    assert "device" not in NUMERIC and "au_r" in NUMERIC
    table = markdown_table()
    assert table.count("\n") == len(METRICS) + 1
    assert is_better("au_r", 0.9, 0.1) and is_better("identity_distance", 0.1, 0.9)


# ---------------------------------------------------------------------------------------- finding inputs on disk

def _image(path, value=0):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def test_find_results_in_a_batch_and_pair_a_moved_run(tmp_path):
    import json

    batch = tmp_path / "batch"
    run = batch / "casme2_Positive_asianFemale_ganimation_3_re_code_linear_fitting"
    for i in range(3):
        _image(run / "frames" / f"{i:03d}.png", i)
    _image(run / "au_curves.png")  # a run folder's other images are not sequences
    (run / "run.json").write_text(json.dumps({"clip": "casme2_Positive_asianFemale", "template": "/gone/t.jpg",
                                              "source_frames": "/gone/imgs", "fps": 200}))
    (batch / "index.csv").write_text("pair,status,error\nSAMM_x,failed,out of memory\n")
    entries, skipped = find_results(batch)
    assert [e.name for e in entries] == [run.name] and skipped == ["SAMM_x: not generated (out of memory)"]
    # the recorded paths are gone: the pair's names are looked up in --sources / --templates instead
    sources, templates = tmp_path / "megc", tmp_path / "templates"
    for clip in ("casme2_Positive_asianFemale", "casme2_Positive_westMale"):
        for i in range(2):
            _image(sources / clip / "imgs" / f"img{i}.jpg")
        _image(sources / clip / "imgs2" / "t.jpg")
    _image(templates / "normalized_asianFemale.jpg")
    _image(templates / "normalized_westernMale.jpg")
    attach_inputs(entries, sources, templates)
    assert entries[0].source.path == sources / "casme2_Positive_asianFemale" / "imgs"
    assert entries[0].template == templates / "normalized_asianFemale.jpg"


def test_other_system_tree_names_and_missing_inputs(tmp_path):
    results = tmp_path / "theirs"
    for i in range(2):
        _image(results / "a" / "clip1" / f"{i}.png")
        _image(results / "b" / "clip1" / f"{i}.png")  # the same name twice: labels keep the path
    (results / "clip2.mp4").write_bytes(b"")
    entries, _ = find_results(results)
    assert sorted(e.name for e in entries) == ["b/clip1", "clip1", "clip2"]
    attach_inputs(entries, None, None)
    assert all(e.source is None and e.template is None for e in entries)
    assert all(any("--sources" in n for n in e.notes) and any("--templates" in n for n in e.notes) for e in entries)
