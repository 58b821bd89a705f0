"""Refitting the AU estimator on a researcher's own OpenFace-coded clips (openface.clip_tree, calibrate --clips) and
using the refit everywhere ($MEGAN_AU_CALIBRATION)."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from catalog.au_schema import OPENFACE_AUS
from helpers import SHARED_DATA, assert_same_calibration
from openface import clip_tree
from openface.au_estimator import CALIBRATION_ENV, CALIBRATION_FILE, AUEstimator, Calibration, calibration_in_use
from openface.landmarks import Face

MEGC = SHARED_DATA / "megc2021"
HEADER = ["frame", "face_id", "timestamp", "confidence", "success"] + [f"{au}_r" for au in OPENFACE_AUS]


class StubLandmarker:
    """Finds one face in every image whose top-left pixel is not black; the face's landmarks encode the pixel."""

    def detect(self, rgb):
        if rgb[0, 0, 0] == 0:
            return []
        return [Face(np.full((478, 3), float(rgb[0, 0, 0])), {"jawOpen": 0.1}, np.eye(4))]


def write_frames(folder, names, value=200):
    folder.mkdir(parents=True)
    for name in names:
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(folder / name)


def write_sequence_csv(path, rows):
    """FeatureExtraction's layout (", " separated); rows: (frame, success, AU01 value)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [", ".join(HEADER)]
    for frame, success, au01 in rows:
        values = [frame, 0, 0.0, 0.98, success, au01] + [0.0] * (len(OPENFACE_AUS) - 1)
        lines.append(", ".join(str(v) for v in values))
    path.write_text("\n".join(lines) + "\n")


def test_sequence_csv_rows_follow_openfaces_text_order_of_the_frames(tmp_path, capsys):
    names = [f"img{k}.jpg" for k in (1, 2, 9, 10, 11)]  # natural order; OpenFace reads img1, img10, img11, img2, img9
    write_frames(tmp_path / "clips" / "sub01" / "EP01", names)
    text_order = sorted(names)
    # AU01 holds each frame's natural position, so the mapping can be read back; img11 lost tracking.
    rows = [(k + 1, 0 if name == "img11.jpg" else 1, names.index(name)) for k, name in enumerate(text_order)]
    write_sequence_csv(tmp_path / "of" / "sub01" / "EP01.csv", rows)
    (clip,) = clip_tree.measure_tree(tmp_path / "clips", tmp_path / "of", StubLandmarker())
    assert clip.name == "sub01/EP01" and clip.frames == ["img1", "img2", "img9", "img10"]
    np.testing.assert_array_equal(clip.openface[:, 0], [0, 1, 2, 3])
    assert "4 of 5 frames used (1 without an OpenFace measurement" in capsys.readouterr().out
    assert clip_tree.tree_kind(tmp_path / "clips", tmp_path / "of") == clip_tree.SEQUENCE_KIND


def test_a_single_clip_folder_is_a_tree_of_one(tmp_path):
    write_frames(tmp_path / "EP02", ["a.png", "b.png"])
    write_sequence_csv(tmp_path / "of" / "EP02.csv", [(1, 1, 0.5), (2, 1, 1.5)])
    (clip,) = clip_tree.measure_tree(tmp_path / "EP02", tmp_path / "of", StubLandmarker())
    assert clip.name == "EP02" and clip.frames == ["a", "b"] and clip.openface[:, 0].tolist() == [0.5, 1.5]


def test_per_frame_csvs_and_frames_without_a_face(tmp_path, capsys):
    write_frames(tmp_path / "clips" / "a", ["f1.png", "f2.png"])
    write_frames(tmp_path / "clips" / "b", ["f1.png"], value=0)  # MediaPipe (here the stub) finds no face
    for clip, stems in (("a", ["f1", "f2"]), ("b", ["f1"])):
        for stem in stems:
            write_sequence_csv(tmp_path / "of" / clip / f"{stem}.csv", [(1, 1, 2.5)])
    a, b = clip_tree.measure_tree(tmp_path / "clips", tmp_path / "of", StubLandmarker())
    assert a.frames == ["f1", "f2"] and np.allclose(a.openface[:, 0], 2.5)
    assert b.frames == [] and "0 of 1 frames used (0 without an OpenFace measurement, 1 without a MediaPipe face)" \
        in capsys.readouterr().out


def test_bad_trees_are_refused_before_any_measuring(tmp_path):
    write_frames(tmp_path / "clips" / "a", ["f1.png", "f2.png"])
    with pytest.raises(FileNotFoundError, match=r"a: no OpenFace output for this clip: expected .*a\.csv"):
        clip_tree.measure_tree(tmp_path / "clips", tmp_path / "clips", StubLandmarker())
    write_sequence_csv(tmp_path / "of" / "a.csv", [(1, 1, 0.0)])  # one row for two frames
    with pytest.raises(ValueError, match=r"a\.csv: 1 rows .* for 2 frames .* FeatureExtraction -fdir"):
        clip_tree.measure_tree(tmp_path / "clips", tmp_path / "of", StubLandmarker())
    write_sequence_csv(tmp_path / "of" / "a.csv", [(1, 1, 0.0), (2, 1, 0.0)])
    write_frames(tmp_path / "clips" / "b", ["f1.png"])
    write_sequence_csv(tmp_path / "of" / "b" / "f1.csv", [(1, 1, 0.0)])
    with pytest.raises(ValueError, match="mixes FaceLandmarkImg .* and FeatureExtraction"):
        clip_tree.measure_tree(tmp_path / "clips", tmp_path / "of", StubLandmarker())
    with pytest.raises(FileNotFoundError, match="--clips .*nowhere: no such folder"):
        clip_tree.clip_folders(tmp_path / "nowhere")


def test_the_calibration_command_refuses_unusable_arguments(tmp_path, capsys):
    from openface import calibrate

    write_frames(tmp_path / "clips" / "a", ["f1.png"])
    assert calibrate.cli(["--clips", str(tmp_path / "clips"), "--openface_csvs", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --openface_csvs {tmp_path / 'none'}: no such folder"

    with pytest.raises(SystemExit):
        calibrate.main(["--clips", str(tmp_path)])  # no --openface_csvs
    with pytest.raises(SystemExit):
        calibrate.main(["--megc_root", str(tmp_path), "--openface_csvs", str(tmp_path)])
    with pytest.raises(SystemExit):
        calibrate.main(["--megc_root", str(tmp_path), "--fps", "0"])
    (tmp_path / "broken.json").write_text("{}")
    assert calibrate.cli(["--megc_root", str(tmp_path), "--check", str(tmp_path / "broken.json")]) == 2
    assert "broken.json: not an AU estimator calibration" in capsys.readouterr().err


def test_megan_au_calibration_replaces_the_shipped_calibration(tmp_path, monkeypatch):
    data = json.loads(CALIBRATION_FILE.read_text())
    data["source"] = "refit on my clips"
    data["aus"]["AU12"]["gain"] = 1.25
    custom = tmp_path / "mine.json"
    custom.write_text(json.dumps(data))
    monkeypatch.setenv(CALIBRATION_ENV, str(custom))
    estimator = AUEstimator()
    assert estimator.calibration.source == "refit on my clips"
    assert estimator.calibration.gain[OPENFACE_AUS.index("AU12")] == 1.25
    assert calibration_in_use() == {"file": str(custom), "source": "refit on my clips"}
    monkeypatch.setenv(CALIBRATION_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match=f"{CALIBRATION_ENV}=.*missing.json: no such file"):
        AUEstimator()
    (tmp_path / "broken.json").write_text('{"aus": {}}')
    with pytest.raises(ValueError, match=r"broken\.json: not an AU estimator calibration"):
        Calibration.load(tmp_path / "broken.json")
    monkeypatch.delenv(CALIBRATION_ENV)
    assert calibration_in_use()["file"] == str(CALIBRATION_FILE)


def megc_as_a_tree(tmp_path):
    """The 6 MEGC2021 clips as a researcher's tree: frame folders + one FeatureExtraction-style CSV per clip,
    whose rows are in OpenFace's text order of the frame names (the package's per-frame CSVs give the values)."""
    from openface.megc_clips import frame_paths, megc_clip_folders, most_confident

    for name, folder in megc_clip_folders(MEGC).items():
        target = tmp_path / "clips" / name
        target.mkdir(parents=True)
        paths = frame_paths(folder / "imgs")
        for path in paths:
            shutil.copy(path, target / path.name)
        lines = [",".join(HEADER)]
        for k, path in enumerate(sorted(paths, key=lambda p: p.name), start=1):
            values = most_confident(folder / "csvs" / f"{path.stem}.csv")
            lines.append(",".join(str(v) for v in [k, 0, 0.0, 0.98, 1, *values.tolist()]))
        (tmp_path / "of").mkdir(exist_ok=True)
        (tmp_path / "of" / f"{name}.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.numeric
@pytest.mark.slow
def test_a_tree_of_the_megc_clips_reproduces_the_shipped_calibration(tmp_path):
    if not MEGC.is_dir():
        pytest.skip(f"{MEGC} not found (the shared data folder)")
    from openface import calibrate

    megc_as_a_tree(tmp_path)
    tree = ["--clips", str(tmp_path / "clips"), "--openface_csvs", str(tmp_path / "of"), "--cache",
            str(tmp_path / "faces.npz")]
    out = calibrate.main([*tree, "--out", str(tmp_path / "mine.json")])
    shipped = json.loads(CALIBRATION_FILE.read_text())
    assert_same_calibration(out, shipped)  # to the precision it is reported with (tests/helpers says why)
    assert "FeatureExtraction" in out["source"] and "6 clips" in out["source"]
    # --check scores a calibration without refitting or writing: the refit, on the clips it was fitted on
    checked = calibrate.main([*tree, "--check", str(tmp_path / "mine.json"), "--out", str(tmp_path / "unused.json")])
    assert checked["checked"] == str(tmp_path / "mine.json") and not (tmp_path / "unused.json").exists()
    loco = out["leave_one_clip_out_within_clip_r"]["sequence_fisher_over_aus"]
    assert checked["sequence_fisher_over_aus"] == pytest.approx(loco, abs=0.02)  # the fit barely moves r


def test_the_measurement_cache_is_reused_only_for_the_same_files(tmp_path, capsys):
    """Issue 23's rule that a resume re-checks its inputs: ``--cache`` was reused even after the clips changed."""
    import os

    from openface.megc_clips import MeasuredClip, measured_clips

    root = tmp_path / "clips"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f1.png").write_bytes(b"1")
    calls = []

    def measure(folder):
        calls.append(folder)
        return [MeasuredClip("a", ["f1"], np.zeros((1, 478, 3)), np.zeros((1, 52)), ("x",) * 52, np.zeros((1, 17)))]

    cache = tmp_path / "faces.npz"
    first = measured_clips(root, cache, measure)
    again = measured_clips(root, cache, measure)
    assert len(calls) == 1 and again[0].frames == first[0].frames == ["f1"]
    os.utime(root / "a" / "f1.png", ns=(1, 1))  # the frame replaced since
    measured_clips(root, cache, measure)
    assert len(calls) == 2 and "measuring again" in capsys.readouterr().err
