"""The AU estimator's two modes: synthetic landmark and blendshape motion for every AU it measures, the London
photos (posed smiles), the calibration command on the MEGC2021 clips, and the places that use the sequence mode."""
import json

import numpy as np
import pytest

from catalog.au_schema import OPENFACE_AUS
from helpers import CALIBRATION_R_ABS, SHARED_DATA, assert_same_calibration
from openface import au_geometry as geo
from openface.align import CANONICAL
from openface.au_estimator import AUEstimator, Calibration
from openface.au_sequence import (
    SEQUENCE_SOURCES,
    SOURCE_NAMES,
    bounded,
    sequence_intensities,
    smooth,
    smoothing_frames,
    source_values,
)
from openface.landmarks import Face

LONDON = SHARED_DATA / "london"
MEGC = SHARED_DATA / "megc2021"

# A schematic frontal face in the canonical 128 px layout: the alignment points where the aligner puts them, the
# region points at plausible heights (y grows downwards); every other mesh point sits at the centre.
LAYOUT = {**{i: (128 * x, 128 * y) for i, (x, y) in CANONICAL.items()},
          107: (52, 27), 55: (50, 30), 336: (76, 27), 285: (78, 30), 70: (30, 26), 46: (30, 28), 105: (40, 25),
          300: (98, 26), 276: (98, 28), 334: (88, 25), 63: (35, 25), 66: (46, 25), 293: (93, 25), 296: (82, 25),
          159: (39, 37), 158: (44, 37), 160: (34, 37), 386: (89, 37), 385: (84, 37), 387: (94, 37),
          145: (39, 43), 144: (34, 43), 153: (44, 43), 374: (89, 43), 380: (84, 43), 373: (94, 43),
          50: (34, 65), 280: (94, 65), 101: (40, 64), 330: (88, 64), 205: (38, 70), 425: (90, 70),
          64: (54, 70), 294: (74, 70), 129: (55, 69), 358: (73, 69), 2: (64, 74),
          0: (64, 84), 37: (58, 85), 267: (70, 85), 61: (44, 90), 291: (84, 90), 13: (64, 89), 82: (60, 89),
          312: (68, 89), 14: (64, 90), 87: (60, 90), 317: (68, 90), 17: (64, 98), 18: (64, 102), 200: (64, 108),
          152: (64, 122), 148: (56, 120), 377: (72, 120)}

# AU -> (mesh points, dx, dy, dz) per pixel of movement, in the direction the muscle pulls.
MOTIONS = {
    "AU01": [(geo.INNER_BROW, 0, -1, 0)],
    "AU02": [(geo.OUTER_BROW, 0, -1, 0)],
    "AU04": [(geo.WHOLE_BROW, 0, 1, 0), (geo.RIGHT_INNER_BROW, 0.5, 0, 0), (geo.LEFT_INNER_BROW, -0.5, 0, 0)],
    "AU05": [(geo.UPPER_LIDS, 0, -1, 0)],
    "AU06": [(geo.UPPER_CHEEKS, 0, -1, 0), (geo.LOWER_LIDS, 0, -0.5, 0)],
    "AU07": [(geo.LOWER_LIDS, 0, -1, 0)],
    "AU09": [(geo.NOSE_WINGS, 0, -1, 0), (geo.UPPER_LIP_TOP, 0, -0.5, 0)],
    "AU10": [(geo.UPPER_LIP_TOP, 0, -1, 0)],
    "AU12": [((61,), -0.5, -1, 0), ((291,), 0.5, -1, 0)],
    "AU14": [(geo.LIP_CORNERS, 0, 0, 1)],
    "AU15": [(geo.LIP_CORNERS, 0, 1, 0)],
    "AU17": [(geo.LOWER_LIP_AND_CHIN, 0, -1, 0)],
    "AU20": [((61,), -1, 0, 0), ((291,), 1, 0, 0)],
    "AU23": [((0,), 0, 0.5, 0), ((17,), 0, -0.5, 0)],
    "AU25": [(geo.LOWER_INNER, 0, 1, 0)],
    "AU26": [(geo.CHIN, 0, 1, 0), (geo.LOWER_INNER, 0, 0.5, 0)],
    "AU45": [(geo.UPPER_LIDS, 0, 1, 0)],
}
BLENDSHAPES = sorted({n for s in SOURCE_NAMES if s not in geo.MEASURE_NAMES
                      for n in ((s[:-1] + "Left", s[:-1] + "Right") if s.endswith("*") else (s,))})


def schematic_face(shift=(0.0, 0.0), scale=1.0, angle=0.0) -> np.ndarray:
    points = np.tile([64.0, 64.0, 0.0], (478, 1))
    for i, (x, y) in LAYOUT.items():
        points[i, :2] = x, y
    c, s = np.cos(angle), np.sin(angle)
    points[:, :2] = scale * points[:, :2] @ np.array([[c, s], [-s, c]]) + np.asarray(shift)
    points[:, 2] *= scale
    return points


def moved(points: np.ndarray, au: str, amount: float) -> np.ndarray:
    out = points.copy()
    for idx, dx, dy, dz in MOTIONS[au]:
        out[list(idx)] += amount * np.array([dx, dy, dz])
    return out


def face(points: np.ndarray, shapes: dict | None = None) -> Face:
    return Face(points, shapes or {n: 0.1 for n in BLENDSHAPES}, np.eye(4))


RAMP = np.r_[np.zeros(4), np.linspace(0.25, 2.0, 8)]  # px: onset, then a micro-expression's rise


def test_every_au_has_a_motion_and_a_calibration():
    assert set(MOTIONS) == set(SEQUENCE_SOURCES) == set(OPENFACE_AUS)
    cal = Calibration.load()
    assert np.all(cal.sequence.gains > 0) and np.all(cal.sequence.scales > 0) and np.all(cal.gain > 0)


def test_measures_ignore_head_position_roll_and_face_size():
    reference = geo.region_measures(schematic_face())
    other = geo.region_measures(schematic_face(shift=(210.0, -35.0), scale=3.7, angle=0.2))
    np.testing.assert_allclose(other, reference, atol=1e-6)


@pytest.mark.parametrize("au", OPENFACE_AUS)
def test_sequence_mode_follows_synthetic_landmark_motion(au):
    estimator, base = AUEstimator(), schematic_face()
    faces = [face(moved(base, au, a)) for a in RAMP]
    curve = estimator.sequence(faces)[:, OPENFACE_AUS.index(au)]
    assert curve[-1] - curve[0] > 0.05, curve  # rises with the movement: neither flat nor reversed
    assert np.all(np.diff(curve) >= -1e-9) and np.all(np.diff(curve[3:]) > 0), curve  # monotonic
    back = estimator.sequence([face(moved(base, au, -a)) for a in RAMP])[:, OPENFACE_AUS.index(au)]
    assert back[-1] < back[0], back  # the opposite movement lowers it


@pytest.mark.parametrize("au", [au for au in OPENFACE_AUS if any(s.lstrip("-") not in geo.MEASURE_NAMES
                                                                for s in SEQUENCE_SOURCES[au])])
def test_sequence_mode_follows_its_blendshapes(au):
    names = [n for s in SEQUENCE_SOURCES[au] if s not in geo.MEASURE_NAMES
             for n in ((s[:-1] + "Left", s[:-1] + "Right") if s.endswith("*") else (s,))]
    faces = [face(schematic_face(), {**{n: 0.1 for n in BLENDSHAPES}, **{n: 0.1 + 0.05 * a for n in names}})
             for a in RAMP]
    curve = AUEstimator().sequence(faces)[:, OPENFACE_AUS.index(au)]
    assert curve[-1] - curve[0] > 0.05 and np.all(np.diff(curve[3:]) > 0), curve


@pytest.mark.parametrize("au", ["AU06", "AU09"])
def test_per_image_landmark_aus_rise_with_their_motion(au):
    estimator, base = AUEstimator(), schematic_face()
    values = [estimator.intensities(face(moved(base, au, a)))[OPENFACE_AUS.index(au)] for a in (0.0, 1.0, 2.0)]
    assert values[0] < values[1] < values[2], values


def test_a_still_clip_keeps_its_onset_level():
    faces = [face(schematic_face())] * 6
    out = AUEstimator().sequence(faces, fps=200)
    np.testing.assert_allclose(out, np.repeat(out[:1], 6, axis=0), atol=1e-12)
    np.testing.assert_allclose(out[0], AUEstimator().intensities(faces[0]), atol=1e-12)


def test_bounded_keeps_order_below_zero_and_stays_in_range():
    x = np.linspace(-1.0, 7.0, 81)
    y = bounded(x)
    assert np.all(y >= 0) and np.all(y <= 5) and np.all(np.diff(y[x < 4.9]) > 0)
    assert abs(bounded(np.array([2.0]))[0] - 2.0) < 1e-6


def test_smoothing_window_follows_the_frame_rate():
    assert smoothing_frames(200) == 9 and smoothing_frames(30) == 1 and smoothing_frames(None) == 1
    x = np.r_[np.zeros(5), np.ones(5)][:, None]
    assert np.allclose(smooth(x, 1), x) and smooth(x, 3)[4, 0] == pytest.approx(1 / 3)
    assert smooth(x, 9)[0, 0] == 0 and smooth(x, 9)[-1, 0] == 1  # the ends padded with their own values


def test_prepare_writes_sequence_aus_for_clips_and_full_precision(tmp_path):
    from openface.prepare import write_tables

    rng = np.random.default_rng(0)
    records = []
    for clip in ("clipA", "clipB"):
        for t in range(5):
            records.append({"name": f"{clip}__img{t + 1}", "status": "ok", "clip": clip, "fps": None,
                            "intensity": rng.uniform(0, 2, 17).tolist(), "presence": [0] * 17,
                            "scores": rng.uniform(0, 0.3, 17).tolist(),
                            "sources": (rng.normal(size=len(SOURCE_NAMES)) * 0.1 + t).tolist(),
                            "mouth_opening": 3.0, "source": "x", "reason": ""})
    photo = {"name": "photo", "status": "ok", "intensity": [0.123456789012345] * 17, "presence": [0] * 17,
             "mouth_opening": 2.0, "source": "y", "reason": ""}
    write_tables(tmp_path, records + [photo], "openface17")
    rows = {line.split(",")[0]: [float(v) for v in line.split(",")[1:]]
            for line in (tmp_path / "aus.csv").read_text().splitlines()[1:]}
    assert rows["photo"] == photo["intensity"]  # written exactly, not rounded
    estimator = AUEstimator()
    clip_a = records[:5]
    expected = sequence_intensities(estimator.calibration.linear(np.array([r["scores"] for r in clip_a])),
                                    np.array([r["sources"] for r in clip_a]), estimator.calibration.sequence)
    np.testing.assert_allclose([rows[r["name"]] for r in clip_a], expected, rtol=1e-12)
    assert not np.allclose(expected, [r["intensity"] for r in clip_a])


# ---------------------------------------------------------------- real data
def need(folder):
    if not folder.is_dir():
        pytest.skip(f"real data not found at {folder} (CI provides ../shared/data)")


@pytest.fixture(scope="module")
def london_pairs():
    need(LONDON)
    from openface.estimator_report import london_faces
    from openface.landmarks import Landmarker

    with Landmarker() as landmarker:
        return london_faces(LONDON, landmarker)


@pytest.mark.slow
def test_london_smiles_raise_au12_and_au06_in_both_modes(london_pairs):
    from openface.estimator_report import smile_wins

    wins = smile_wins(london_pairs, AUEstimator())
    print(json.dumps(wins))
    assert len(london_pairs) == 80
    for mode in ("image", "sequence"):
        assert wins[mode]["AU12"] >= 78 and wins[mode]["AU06"] >= 78, (mode, wins[mode])
    assert wins["sequence"]["AU15"] <= 10  # a smile pulls the lip corners up, not down


@pytest.mark.slow
def test_no_au_is_constant_over_the_london_photos(london_pairs):
    estimator = AUEstimator()
    values = np.array([estimator.intensities(f) for pair in london_pairs.values() for f in pair])
    spread = dict(zip(OPENFACE_AUS, values.std(axis=0)))
    assert all(s > 0.01 for s in spread.values()), spread


def test_facs_codes_are_read_as_the_coders_wrote_them():
    from openface.facs_check import coded_aus, match_clip

    assert coded_aus("4+7+L10") == ("AU04", "AU07", "AU10")
    assert coded_aus("A9E+ref(10)") == ("AU09",)  # a referenced AU is not a coded movement
    assert coded_aus("5B+24") == ("AU05",)  # AU24 has no OpenFace channel
    assert coded_aus("7C+A12B") == ("AU07", "AU12")
    rows = [{"dataset": "samm", "subject": "022", "onset": "3659", "apex": "3683", "offset": "3697",
             "aus": "7C+A12B", "clip_id": "s_022_3_3"},
            {"dataset": "samm", "subject": "023", "onset": "3659", "apex": "3670", "offset": "3697", "aus": "4",
             "clip_id": "other person"}]
    frames = [f"022_{n}" for n in range(3659, 3698)]
    coded = match_clip("SAMM_Positive", frames, rows)
    assert coded.label == "s_022_3_3" and coded.apex == 24 and coded.aus == ("AU07", "AU12")
    assert match_clip("SAMM_Positive", frames[:-1], rows) is None  # the offset must match too


@pytest.mark.numeric
@pytest.mark.slow
def test_calibration_is_reproduced_by_its_command(tmp_path):
    need(MEGC)
    from openface import calibrate
    from openface.au_estimator import CALIBRATION_FILE

    out = calibrate.main(["--megc_root", str(MEGC), "--cache", str(tmp_path / "faces.npz"),
                          "--out", str(tmp_path / "cal.json")])
    shipped = json.loads(CALIBRATION_FILE.read_text())
    assert_same_calibration(out, shipped)  # to the precision it is reported with (tests/helpers says why)
    loco = out["leave_one_clip_out_within_clip_r"]
    assert loco["sequence_fisher_over_aus"] > loco["image_fisher_over_aus"] + 0.03
    assert loco["sequence_fisher_over_aus"] >= 0.28
    assert calibrate.main(["--megc_root", str(MEGC), "--cache", str(tmp_path / "faces.npz"),
                           "--out", str(tmp_path / "again.json")]) == out  # the cache gives the same fit
    need(SHARED_DATA / "me_annotations")
    from data.annotations import main as annotations_main

    sheets = sorted(str(p) for p in (SHARED_DATA / "me_annotations").glob("*.xlsx"))
    assert annotations_main([*sheets, "--out", str(tmp_path / "clips.csv")]) == 0
    coded = calibrate.main(["--megc_root", str(MEGC), "--cache", str(tmp_path / "faces.npz"), "--out",
                            str(tmp_path / "coded.json"), "--codes", str(tmp_path / "clips.csv")])
    facs = coded["leave_one_clip_out_within_clip_r"]["facs_coded"]
    shipped_facs = shipped["leave_one_clip_out_within_clip_r"]["facs_coded"]
    for mode in ("sequence", "image"):
        # printed with 3 decimals (openface.calibrate's coded table); MediaPipe differs in the last digits by CPU
        assert facs[mode]["fisher_r"] == pytest.approx(shipped_facs[mode]["fisher_r"], abs=CALIBRATION_R_ABS)
    assert facs["sequence"]["coded"] == 10 and facs["sequence"]["rising"] == 10  # all 6 clips matched
    assert facs["sequence"]["fisher_r"] > facs["image"]["fisher_r"]
    assert facs["sequence"]["rising_by_facs_rise"] > facs["image"]["rising_by_facs_rise"]


@pytest.mark.slow
def test_clip_measurement_and_evaluation_use_the_sequence_mode():
    need(MEGC)
    from media.images import load_rgb
    from metrics.analysis import analyse, shared_tools
    from openface.frontend import measure_images
    from openface.megc_clips import frame_paths

    frames = [load_rgb(p) for p in frame_paths(MEGC / "casme2_Positive_westMale" / "imgs")[:12]]
    tools = shared_tools()
    faces = [tools.front_end.landmarker.detect(f)[0] for f in frames]
    expected = tools.front_end.estimator.sequence(faces, fps=200)
    analysed = analyse(np.stack(frames), tools, None, describe=False, fps=200).aus
    np.testing.assert_allclose(analysed, expected, rtol=1e-9)
    measured, presence = measure_images(list(enumerate(frames)), OPENFACE_AUS, tools.front_end, fps=200)
    np.testing.assert_allclose(measured, expected, rtol=1e-9)
    assert not np.allclose(expected, [tools.front_end.estimator.intensities(f) for f in faces])
    assert source_values(faces[0].landmarks, faces[0].blendshapes).shape == (len(SOURCE_NAMES),)


@pytest.mark.slow
def test_prepare_clips_gives_each_frame_folder_the_sequence_mode(tmp_path):
    need(MEGC)
    import shutil

    from media.images import load_rgb
    from openface.frontend import FaceFrontEnd
    from openface.megc_clips import frame_paths
    from openface.prepare import main as prepare_main

    clips = {"casme2_Positive": MEGC / "casme2_Positive_westMale", "SAMM_Surprise": MEGC / "SAMM_Surprise_westMale"}
    for name, folder in clips.items():
        (tmp_path / "in" / name).mkdir(parents=True)
        for path in frame_paths(folder / "imgs")[:6]:
            shutil.copy(path, tmp_path / "in" / name / path.name)
    assert prepare_main([str(tmp_path / "in"), str(tmp_path / "out"), "--clips", "--fps", "200",
                         "--no_progress"]) == 0
    rows = {line.split(",")[0]: [float(v) for v in line.split(",")[1:]]
            for line in (tmp_path / "out" / "aus.csv").read_text().splitlines()[1:]}
    with FaceFrontEnd() as front_end:
        for name in clips:
            paths = frame_paths(tmp_path / "in" / name)
            faces = [front_end.landmarker.detect(load_rgb(p))[0] for p in paths]
            expected = front_end.estimator.sequence(faces, fps=200)
            np.testing.assert_allclose([rows[f"{name}__{p.stem}"] for p in paths], expected, rtol=1e-9)


def test_auto_backend_prefers_an_installed_openface(tmp_path, monkeypatch):
    from openface.backend_choice import choose_au_backend

    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert choose_au_backend() == "builtin"
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("FaceLandmarkImg", "FeatureExtraction"):
        (folder / tool).write_text("#!/bin/sh\n")
        (folder / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    assert choose_au_backend() == "openface"
    monkeypatch.setenv("OPENFACE_BIN", str(tmp_path / "nowhere"))  # asked for, but not there: say so
    with pytest.raises(FileNotFoundError):
        choose_au_backend()


def test_reference_limits_tell_signal_from_frame_noise():
    from openface.reference_limits import horizontal_gaze, neighbour_average, noise_ceiling, smooth_ceiling

    assert neighbour_average(np.arange(10.0), 9)[4] == pytest.approx(4.0)  # the frame itself is left out
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 200)
    noise = np.zeros((200, len(OPENFACE_AUS)))
    noise[:, 0] = rng.normal(0, 1, 200)  # AU01: frame-to-frame noise only
    noise[:, 1] = np.sin(2 * np.pi * t) + 0.1 * rng.normal(0, 1, 200)  # AU02: a slow movement, little noise
    smooth_view, ceiling = smooth_ceiling([noise], 9), noise_ceiling([noise])
    assert abs(smooth_view["per_au"]["AU01"]) < 0.2 and smooth_view["per_au"]["AU02"] > 0.95
    assert ceiling["per_au"]["AU01"] < 0.3 and ceiling["per_au"]["AU02"] > 0.95
    assert "AU04" not in ceiling["per_au"]  # a flat OpenFace curve does not "move"
    left = {"eyeLookOutLeft": 0.6, "eyeLookInRight": 0.5}
    assert horizontal_gaze(left) > 0 > horizontal_gaze({"eyeLookInLeft": 0.6, "eyeLookOutRight": 0.5})
