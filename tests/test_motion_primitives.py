"""Per-AU motion primitives (motion/primitives.py, motion/fit_primitives.py): the direction of every AU's pattern,
the demo's AU matrices, the file's provenance, the fit's algebra, and the held-out London smile check on real data.

Canonical units: origin between the outer eye corners, x towards the face's left (image right), y down the face,
one unit = the outer-eye-corner distance. "Outward" is away from the midline: -x on the right half (x < 0).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catalog.au_schema import N2ME_18, OPENFACE_AUS
from helpers import ROOT, SHARED_DATA
from motion import fit_primitives as fp
from motion.primitives import PRIMITIVES_FILE, AUPrimitives, load_primitives

RIGHT_CORNER, LEFT_CORNER = 61, 291
CHIN = 152


@pytest.fixture(scope="module")
def prims() -> AUPrimitives:
    return load_primitives()


def unit(prims: AUPrimitives, au: str, amount: float = 1.0) -> np.ndarray:
    aus = np.zeros((1, len(OPENFACE_AUS)))
    aus[0, OPENFACE_AUS.index(au)] = amount
    return prims.displacements(aus, OPENFACE_AUS)[0]


def both(indices, prims: AUPrimitives) -> list[int]:
    return fp.both_sides(indices, np.load(PRIMITIVES_FILE)["twin"])


def outward(prims: AUPrimitives, field: np.ndarray, idx) -> np.ndarray:
    """x displacement of the points ``idx`` signed so that > 0 is away from the midline."""
    return field[list(idx), 0] * np.sign(prims.reference[list(idx), 0])


def test_shipped_file_loads_in_schema_order(prims):
    assert prims.names == OPENFACE_AUS
    assert prims.reference.shape == (478, 2) and prims.patterns.shape == (17, 478, 2)
    # the reference is in canonical units: outer eye corners at (-0.5, 0) and (0.5, 0)
    np.testing.assert_allclose(prims.reference[[33, 263]], [[-0.5, 0.0], [0.5, 0.0]], atol=1e-9)


def test_zero_intensity_gives_exactly_no_motion(prims):
    assert np.array_equal(prims.displacements(np.zeros((4, 17)), OPENFACE_AUS), np.zeros((4, 478, 2)))


def test_motion_is_linear_and_saturates(prims):
    one, two = unit(prims, "AU12", 1.0), unit(prims, "AU12", 2.0)
    np.testing.assert_allclose(two, 2 * one, rtol=1e-12, atol=1e-15)
    # the lids are shut at intensity 3: a blink of 5 moves them no further
    np.testing.assert_array_equal(unit(prims, "AU45", 5.0), unit(prims, "AU45", fp.BLINK_CLOSED_AT))


def test_other_schemas_by_name(prims):
    """N2ME's 18 values: the mouth opening AU27* is not covered and adds nothing; the rest is matched by name."""
    aus = np.zeros((1, N2ME_18.n))
    aus[0, N2ME_18.index("AU12")] = 2.0
    aus[0, N2ME_18.index("AU27*")] = 20.0
    np.testing.assert_allclose(prims.displacements(aus, N2ME_18.names)[0], unit(prims, "AU12", 2.0))
    with pytest.raises(ValueError, match="17 schema names"):
        prims.displacements(np.zeros((3, 5)), OPENFACE_AUS)


def test_patterns_are_left_right_symmetric(prims):
    twin = np.load(PRIMITIVES_FILE)["twin"]
    assert np.array_equal(twin[twin], np.arange(478))
    mirrored = prims.patterns[:, twin] * np.array([-1.0, 1.0])
    np.testing.assert_allclose(prims.patterns, mirrored, atol=1e-12)


def test_lip_corner_puller_moves_corners_up_and_out(prims):
    field = unit(prims, "AU12")
    assert np.all(field[[RIGHT_CORNER, LEFT_CORNER], 1] < -0.008)  # up: at least 0.8 % of the eye distance a unit
    assert np.all(outward(prims, field, [RIGHT_CORNER, LEFT_CORNER]) > 0.005)


def test_brow_aus(prims):
    inner, outer = both(fp.INNER_BROW, prims), both(fp.OUTER_BROW, prims)
    au1, au2, au4 = unit(prims, "AU01"), unit(prims, "AU02"), unit(prims, "AU04")
    assert au1[inner, 1].mean() < -0.01 and au1[inner, 1].mean() < au1[outer, 1].mean()  # inner brow up most
    assert au2[outer, 1].mean() < -0.01 and au2[outer, 1].mean() < au2[inner, 1].mean()  # outer brow up most
    assert au4[inner + outer, 1].mean() > 0.005  # brows down
    assert outward(prims, au4, inner).mean() < -0.004  # and drawn together
    lids = both(fp.UPPER_LID, prims)
    assert np.abs(au1[lids]).max() < 0.003 and np.abs(au4[lids]).max() < 0.003  # the lids stay


def test_lid_aus(prims):
    twin = np.load(PRIMITIVES_FILE)["twin"]
    upper = list(fp.UPPER_LID) + twin[list(fp.UPPER_LID)].tolist()  # point for point above ``lower``
    lower = list(fp.LOWER_LID) + twin[list(fp.LOWER_LID)].tolist()
    gap = prims.reference[lower, 1] - prims.reference[upper, 1]
    assert np.all(unit(prims, "AU05")[upper, 1] < -0.005)  # upper lid raised: the eye opens
    shut = prims.reference + unit(prims, "AU45", fp.BLINK_CLOSED_AT)
    assert np.all(shut[lower, 1] - shut[upper, 1] < 0.05 * gap)  # a full blink closes the lids
    assert np.all(unit(prims, "AU07")[lower, 1] < -0.004)  # lid tightener raises the lower lid
    assert np.all(unit(prims, "AU06")[both((50, 101, 118), prims), 1] < -0.005)  # cheek raiser lifts the cheeks
    assert np.array_equal(prims.patterns[:, 468:], np.zeros((17, 10, 2)))  # the irises keep their shape


def test_mouth_and_jaw_aus(prims):
    corners = [RIGHT_CORNER, LEFT_CORNER]
    assert unit(prims, "AU26")[CHIN, 1] > 0.02  # jaw drop: chin down
    assert unit(prims, "AU26")[14, 1] > 0.015 and abs(unit(prims, "AU26")[13, 1]) < 0.002  # lower lip only
    assert unit(prims, "AU25")[14, 1] > 0.008 and unit(prims, "AU25")[13, 1] < 0  # lips part
    assert unit(prims, "AU17")[CHIN, 1] < -0.005  # chin raiser
    assert np.all(unit(prims, "AU15")[corners, 1] > 0.008)  # corners down
    assert np.all(outward(prims, unit(prims, "AU20"), corners) > 0.008)  # lip stretcher: corners out
    assert np.all(outward(prims, unit(prims, "AU23"), corners) < -0.002)  # lip tightener: corners in
    assert unit(prims, "AU10")[0, 1] < -0.008  # upper lip up
    assert unit(prims, "AU09")[both((64, 129), prims), 1].mean() < -0.006  # nose wings up


def apex(name: str) -> np.ndarray:
    table = np.genfromtxt(ROOT / "examples" / "au_matrices" / name, delimiter=",", names=True)
    return np.array([[row[au] for au in OPENFACE_AUS] for row in table])


def test_demo_positive_matrix_smiles(prims):
    """examples/au_matrices/positive.csv (AU6 2, AU12 3 at the apex): corners up and out by a few % of the eye
    distance."""
    aus = apex("positive.csv")
    field = prims.displacements(aus, OPENFACE_AUS)[int(np.argmax(aus.sum(1)))]
    corners = [RIGHT_CORNER, LEFT_CORNER]
    assert np.all(field[corners, 1] < -0.03) and np.all(outward(prims, field, corners) > 0.02)


def test_demo_surprise_matrix_raises_brows_and_lids(prims):
    """examples/au_matrices/surprise.csv (AU1 2.5, AU2 2.5, AU5 2, AU26 2 at the apex)."""
    aus = apex("surprise.csv")
    field = prims.displacements(aus, OPENFACE_AUS)[int(np.argmax(aus.sum(1)))]
    brows = both(fp.INNER_BROW + fp.OUTER_BROW + fp.MID_BROW, prims)
    assert np.all(field[brows, 1] < -0.02)  # every brow point up by 2 % of the eye distance or more
    assert np.all(field[both(fp.UPPER_LID, prims), 1] < -0.012)
    assert field[CHIN, 1] > 0.04


def test_ridge_to_prior_recovers_known_patterns():
    """With plenty of exact data and a tiny ridge the fit returns the true patterns; with no data, the priors."""
    rng = np.random.default_rng(0)
    true = rng.normal(size=(3, 5, 2))
    changes = rng.uniform(0, 3, size=(40, 3))
    motion = np.einsum("nk,kpc->npc", changes, true)
    priors = np.zeros_like(true)
    fitted = fp.ridge_to_prior(changes, motion, np.ones(40), priors, np.full((3, 5), 1e-9))
    np.testing.assert_allclose(fitted, true, atol=1e-6)
    none = fp.ridge_to_prior(np.zeros((4, 3)), np.zeros((4, 5, 2)), np.ones(4), true, np.ones((3, 5)))
    np.testing.assert_allclose(none, true, atol=1e-12)


def test_pose_removal_ignores_head_motion():
    """A face rotated in 3-D, scaled and shifted, with no expression, has no expression motion."""
    rng = np.random.default_rng(1)
    face = rng.normal(size=(478, 3)) * 40 + 200
    face[33], face[263] = [150, 200, 0], [250, 200, 0]
    angle = np.radians(12)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    moved = 1.1 * face @ rot.T + [7.0, -3.0, 2.0]
    np.testing.assert_allclose(fp.expression_motion(face, moved), 0.0, atol=1e-9)


def test_provenance_names_data_terms_and_split(prims):
    info = json.loads(PRIMITIVES_FILE.with_suffix(".json").read_text())
    london = info["data"]["london"]
    assert "CC BY 4.0" in info["terms"] and "5047666" in london["terms"]
    assert not set(london["held_out_people"]) & set(london["fitted_people"])
    fitted, held = fp.split_ids(london["fitted_people"] + london["held_out_people"])
    assert held == london["held_out_people"] and fitted == london["fitted_people"]
    assert set(info["pattern_origin"]) == set(OPENFACE_AUS)


def test_bad_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="bad.npz: not an AU primitives file"):
        load_primitives(bad)
    with pytest.raises(FileNotFoundError, match="motion.fit_primitives"):
        load_primitives(tmp_path / "missing.npz")


def test_command_rejects_a_wrong_london_folder(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as stop:
        fp.main(["--london", str(tmp_path), "--check"])
    assert stop.value.code == 2 and "no London photo pairs" in capsys.readouterr().err


def test_check_of_a_missing_file_is_one_line(tmp_path: Path, capsys):
    for sub, name in (("neutral", "001_03.jpg"), ("smiling", "001_08.jpg")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / name).write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        fp.main(["--london", str(tmp_path), "--check", str(tmp_path / "none.npz")])
    assert stop.value.code == 2 and "none.npz: no such AU primitives file" in capsys.readouterr().err


@pytest.mark.numeric
@pytest.mark.skipif(not (SHARED_DATA / "london").is_dir(), reason="London set not found at ../shared/data/london "
                    "(CI provides ../shared/data)")
def test_held_out_london_smiles(prims):
    """The issue's check: each held-out person's neutral face, driven by the estimator's AU change to the same
    person's smiling photo, moves its mouth corners at least half as far as the real smile, in its direction.
    Measured: median along-ratio 0.84, median cosine 0.989, 16 of 20 people (80 %); the 4 below are people whose
    smile the estimator misses (AU12 change 0.03-0.66 against 3.2 on average). The bars leave room for MediaPipe's
    last-digit differences between CPUs (about 1e-6 relative, tests/helpers): the person nearest the bar is at 0.58,
    and two more people may fall below half way before the share bar fails."""
    held = prims.info["data"]["london"]["held_out_people"]
    result = fp.smile_check(prims, fp.measure_london(SHARED_DATA / "london", held), held)
    assert result["people"] == 20
    assert result["median_along"] >= 0.7
    assert result["median_cosine"] >= 0.95
    assert result["share_meeting"] >= 0.7


@pytest.mark.numeric
@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "london").is_dir() or not (SHARED_DATA / "megc2021").is_dir(),
                    reason="London set or MEGC2021 package not found in ../shared/data (CI provides it)")
def test_the_command_reproduces_the_shipped_file(tmp_path: Path):
    """``python -m motion.fit_primitives`` (MediaPipe on 160 photos and 493 clip frames, about 30 s) writes the
    shipped patterns. Tolerance: jittering every landmark by 0.01 px (and every AU by 0.001) moved the patterns by
    at most 5e-5 canonical units (measured with the cached measurements); MediaPipe's landmarks differ between CPUs
    by about 1e-6 relative (tests/helpers: an AMD EPYC against the machine that fitted the shipped files), 5e-4 px
    on these 512 px photos, far below 0.01 px. 1e-3 (0.1 px per intensity unit at a 100 px eye distance) is still
    far below what any change of the fit's settings moves."""
    out = tmp_path / "prims.npz"
    checks = fp.main(["--london", str(SHARED_DATA / "london"), "--megc_root", str(SHARED_DATA / "megc2021"),
                      "--out", str(out)])
    mine, shipped = load_primitives(out), load_primitives()
    np.testing.assert_allclose(mine.patterns, shipped.patterns, atol=1e-3)
    np.testing.assert_allclose(mine.reference, shipped.reference, atol=1e-4)
    assert mine.info["data"] == shipped.info["data"] and mine.info["fit"] == shipped.info["fit"]
    assert checks["london_held_out"]["share_meeting"] >= 0.7
    assert sorted(checks["megc_clips"]) == ["SAMM_Negative", "SAMM_Positive", "SAMM_Surprise", "casme2_Negative",
                                            "casme2_Positive", "casme2_Surprise"]
