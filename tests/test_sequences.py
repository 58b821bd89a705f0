"""Test mode and the MEGC batch driver, end to end, with a small randomly initialised checkpoint."""
import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from checkpoints import BUNDLED_CHECKPOINT
from for_megc2021 import main as megc_main
from helpers import ROOT, TINY_MODEL, make_tiny_dataset
from main import main
from media.video import probe_video

EXAMPLES = ROOT / "examples" / "au_matrices"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    data = make_tiny_dataset(tmp / "data", n=6)
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp / "ck"), "--name", "g", *TINY_MODEL,
                 "--batch_size", "2", "--max_steps", "1"]) == 0
    return tmp / "ck" / "g" / "latest.pth"


def run_test_mode(ckpt, *args, motion="none"):
    """Test mode with the tiny checkpoint; the seeds' generation unless ``motion`` says otherwise (most tests here
    use generated cartoon templates, which have no face for motion transfer to move)."""
    return main(["--mode", "test", "--motion", motion, "--ckpt", str(ckpt), "--gpu_ids", "-1", "--no_progress",
                 *args])


def only_child(folder):
    children = [p for p in folder.iterdir() if p.is_dir()]
    assert len(children) == 1, children
    return children[0]


@pytest.mark.parametrize("table", ["positive", "surprise"])
@pytest.mark.slow
def test_au_matrix_drives_a_template_without_source_frames(tiny_ckpt, tmp_path, table):
    template = tmp_path / "template.png"
    Image.fromarray(np.full((90, 90, 3), 128, np.uint8)).save(template)
    assert run_test_mode(tiny_ckpt, "--aus_matrix", str(EXAMPLES / f"{table}.csv"), "--template", str(template),
                "--results_dir", str(tmp_path / "res"), "--fps", "30", "--output_size", "128") == 0
    out = only_child(tmp_path / "res")
    assert out.name == f"{table}_ganimation_1_no-re_code_1V1"
    assert len(list((out / "frames").glob("*.png"))) == 30
    assert not (out / "source.mp4").exists()  # there is no source clip
    video = probe_video(out / "target.mp4")
    assert video["frames"] == 30 and video["fps"] == 30 and video["codec"] == "h264"
    assert probe_video(out / "compare.mp4")["size"][0] > 256  # template | result side by side
    driven = np.loadtxt(out / "aus_driven.csv", delimiter=",", skiprows=1)[:, 1:]
    shipped = np.loadtxt(EXAMPLES / f"{table}.csv", delimiter=",", skiprows=1)[:, 1:]
    np.testing.assert_allclose(driven, shipped, atol=1e-3)


@pytest.mark.slow
def test_result_folders_are_never_overwritten(tiny_ckpt, tmp_path):
    template = tmp_path / "t.png"
    Image.new("RGB", (40, 40), "gray").save(template)
    args = ["--aus_matrix", str(EXAMPLES / "positive.csv"), "--template", str(template),
            "--results_dir", str(tmp_path / "res"), "--no_video", "--max_dataset_size", "3"]
    assert run_test_mode(tiny_ckpt, *args) == 0 and run_test_mode(tiny_ckpt, *args) == 0
    names = sorted(p.name for p in (tmp_path / "res").iterdir())
    assert names == ["positive_ganimation_1_no-re_code_1V1", "positive_ganimation_1_no-re_code_1V1_2"]
    assert len(list((tmp_path / "res" / names[1] / "frames").glob("*.png"))) == 3


def _small_pair(tmp_path, megc_root, frames=4, folder="casme2_Positive_asianFemale"):
    """A copy of a real pair folder cut to a few frames (fast), with its CSVs and AU table."""
    src = megc_root / folder
    dst = tmp_path / folder
    (dst / "imgs").mkdir(parents=True)
    (dst / "csvs").mkdir()
    names = sorted((p.stem for p in (src / "imgs").iterdir()), key=lambda n: int(n.split("img")[-1]))[:frames]
    for n in names:
        shutil.copy(src / "imgs" / f"{n}.jpg", dst / "imgs")
        shutil.copy(src / "csvs" / f"{n}.csv", dst / "csvs")
    shutil.copytree(src / "imgs2", dst / "imgs2")
    shutil.copytree(src / "csvs2", dst / "csvs2")
    return dst


@pytest.mark.slow
def test_one_frame_clip_and_apex_at_frame_zero(tiny_ckpt, tmp_path, megc_root):
    pair = _small_pair(tmp_path, megc_root, frames=1)
    assert run_test_mode(tiny_ckpt, "--data_root", str(pair), "--re_code", "--apex_frame", "--results_dir",
                str(tmp_path / "r1"), "--no_video") == 0
    pair3 = _small_pair(tmp_path / "b", megc_root, frames=3)
    assert run_test_mode(tiny_ckpt, "--data_root", str(pair3), "--linear_fitting", "--top_frame", "0", "--results_dir",
                str(tmp_path / "r2"), "--no_video") == 0
    assert len(list((only_child(tmp_path / "r2") / "frames").glob("*.png"))) == 3


@pytest.mark.parametrize("damage, message", [
    ("two_templates", "choose one with --template"),
    ("csv_name_mismatch", "no OpenFace CSV for 1 frame"),
    ("no_csvs_recode", "--re_code needs OpenFace presence flags"),
])
def test_bad_test_folders_are_explained(tiny_ckpt, tmp_path, megc_root, capsys, damage, message):
    pair = _small_pair(tmp_path, megc_root)
    if damage == "two_templates":
        shutil.copy(next((pair / "imgs2").iterdir()), pair / "imgs2" / "second.jpg")
    elif damage == "csv_name_mismatch":
        csv_file = sorted((pair / "csvs").iterdir())[0]
        csv_file.rename(csv_file.with_name("renamed.csv"))
    else:
        shutil.rmtree(pair / "csvs")
    assert run_test_mode(tiny_ckpt, "--data_root", str(pair), "--re_code", "--results_dir", str(tmp_path / "r")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing half-written


@pytest.mark.slow
def test_checkpoint_with_another_au_count_is_refused(tmp_path, megc_root, capsys):
    data = make_tiny_dataset(tmp_path / "d18", n=4, n_aus=18)
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "g18", *TINY_MODEL,
                 "--aus_nc", "18", "--batch_size", "2", "--max_steps", "1"]) == 0
    pair = _small_pair(tmp_path, megc_root)
    assert run_test_mode(tmp_path / "ck" / "g18", "--data_root", str(pair), "--results_dir", str(tmp_path / "r")) == 2
    assert "18" in capsys.readouterr().err


@pytest.mark.slow
def test_for_megc2021_over_the_real_test_package(tiny_ckpt, tmp_path, megc_root):
    out = tmp_path / "megc"
    assert megc_main(["--megc_root", str(megc_root), "--ckpt", str(tiny_ckpt), "--results_dir", str(out),
                      "--gpu_ids", "-1", "--re_code", "--linear_fitting", "--output_size", "128",
                      "--no_progress"]) == 0
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        result = out / row["out_dir"].split("/")[-1]
        n_source = len(list((megc_root / row["pair"] / "imgs").iterdir()))
        assert len(list((result / "frames").glob("*.png"))) == n_source == int(row["frames"])
        for video in ("source.mp4", "target.mp4", "compare.mp4"):
            meta = probe_video(result / video)
            assert meta["frames"] == n_source and meta["fps"] == 200 and meta["codec"] == "h264"
        assert (result / "au_curves.png").stat().st_size > 0 and (result / "target.gif").exists()
    assert Image.open(out / "contact_sheet.png").size == (3 * 128, 12 * (128 + 16))


@pytest.mark.slow
def test_megc2022_form_clips_times_templates_with_a_failing_pair(tiny_ckpt, tmp_path, megc_root, capsys):
    clips, templates = tmp_path / "clips", tmp_path / "templates"
    for folder in ("casme2_Positive_asianFemale", "casme2_Surprise_westMale"):
        pair = _small_pair(clips, megc_root, frames=3, folder=folder)
        shutil.rmtree(pair / "imgs2")
        shutil.rmtree(pair / "csvs2")
    broken = _small_pair(clips, megc_root, frames=2, folder="casme2_Negative_westMale")
    shutil.rmtree(broken / "csvs")  # no AUs at all: this clip's pairs fail, the others go on
    templates.mkdir()
    shutil.copy(megc_root / "casme2_Positive_asianFemale" / "imgs2" / "normalized_asianFemale.jpg", templates)
    shutil.copy(megc_root / "casme2_Positive_asianFemale" / "csvs2" / "normalized_asianFemale.csv", templates)
    Image.new("RGB", (256, 256), "gray").save(templates / "Template_Plain.jpg")
    args = ["--clips", str(clips), "--templates", str(templates), "--ckpt", str(tiny_ckpt), "--gpu_ids", "-1",
            "--results_dir", str(tmp_path / "out"), "--no_video", "--no_progress", "--apex_frame"]
    assert megc_main(args + ["--dry_run"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 6 and not (tmp_path / "out").exists()
    assert megc_main(args) == 1  # some pairs failed
    rows = {r["pair"]: r for r in csv.DictReader(open(tmp_path / "out" / "index.csv"))}
    assert len(rows) == 6
    assert rows["casme2_Positive_asianFemale_normalized_asianFemale"]["status"] == "ok"
    # --apex_frame needs the template's AUs: the plain template has no CSV, so its pairs fail with that reason.
    assert "template's AUs" in rows["casme2_Surprise_westMale_Template_Plain"]["error"]
    assert all(r["status"] == "failed" for p, r in rows.items() if p.startswith("casme2_Negative"))
    assert sum(r["status"] == "ok" for r in rows.values()) == 2
    assert Image.open(tmp_path / "out" / "contact_sheet.png").size[1] == 2 * (128 + 16)


@pytest.mark.slow
def test_generated_run_is_scored_by_main_eval(tiny_ckpt, tmp_path, megc_root):
    """Test mode on a real clip with the bundled generator, then ``main.py --mode eval`` on its run folder: source
    and template come from run.json and the metrics have values. A random generator's faceless frames are counted
    and excluded, and the metrics that need a face are absent, never zero."""
    # 12 frames (60 ms at 200 fps): the AU estimator's sequence mode smooths over 45 ms, so in the first 6 frames
    # alone no AU of the source moves enough for au_r
    pair = _small_pair(tmp_path, megc_root, frames=12)
    for name, ckpt, code in (("bundled", BUNDLED_CHECKPOINT, 0), ("random", tiny_ckpt, 1)):
        assert run_test_mode(ckpt, "--data_root", str(pair), "--results_dir", str(tmp_path / name),
                             "--output_size", "128", "--no_video") == 0
        run = only_child(tmp_path / name)
        assert main(["--mode", "eval", "--results", str(run), "--out", str(tmp_path / f"eval_{name}"),
                     "--no_report"]) == code  # a result with no face in any frame is not "ok"
    (record,) = json.loads((tmp_path / "eval_bundled" / "metrics.json").read_text())["pairs"]
    assert record["status"] == "ok" and record["source"].endswith("imgs") and record["fps"] == 200
    assert record["no_face_result"] == []
    values = record["metrics"]
    for name in ("au_r", "au_mae", "identity_distance", "ssim_static", "flicker", "flow_r", "frames_per_s"):
        assert values[name] is not None, name
    assert values["identity_same_rate"] == 1.0 and values["device"] == "cpu"
    assert (tmp_path / "eval_bundled" / "metrics.csv").read_text().count("\n") == 2  # header + one pair
    (garbage,) = json.loads((tmp_path / "eval_random" / "metrics.json").read_text())["pairs"]
    assert garbage["no_face_result"] == list(range(12)) and garbage["status"] == "no_face"
    assert any("no face in 12 of 12" in note for note in garbage["notes"])
    assert garbage["metrics"]["au_mae"] is None and garbage["metrics"]["identity_distance"] is None
    assert main(["--mode=eval", "--results", str(tmp_path / "nothing")]) == 2


# --- motion transfer through test mode (docs/motion.md) -----------------------------------------------------------

def _frames(result):
    return [np.asarray(Image.open(p).convert("RGB"), np.int16) for p in sorted((result / "frames").glob("*.png"))]


@pytest.mark.slow
def test_motion_transfer_from_a_clip_is_the_default_and_recorded(tiny_ckpt, tmp_path, megc_root):
    pair = _small_pair(tmp_path, megc_root, frames=12, folder="casme2_Positive_asianFemale")
    assert main(["--mode", "test", "--ckpt", str(tiny_ckpt), "--gpu_ids", "-1", "--no_progress", "--data_root",
                 str(pair), "--results_dir", str(tmp_path / "r"), "--no_video", "--output_size", "128"]) == 0
    result = only_child(tmp_path / "r")
    assert result.name.endswith("_motion")  # never the seeds' folder name
    run = json.loads((result / "run.json").read_text())
    assert run["motion"]["used"] == "clip" and run["motion"]["texture_used"] == "clip"
    assert run["motion"]["filled_frames"] == [] and run["motion"]["smooth_ms"] == 25.0
    assert len(_frames(result)) == 12


@pytest.mark.slow
def test_motion_from_an_au_matrix_moves_a_real_template_through_the_primitives(tiny_ckpt, tmp_path, megc_root):
    template = megc_root / "casme2_Positive_asianFemale" / "imgs2" / "normalized_asianFemale.jpg"
    args = ["--aus_matrix", str(EXAMPLES / "positive.csv"), "--template", str(template), "--no_video",
            "--output_size", "128"]
    assert run_test_mode(tiny_ckpt, *args, "--texture", "none", "--results_dir", str(tmp_path / "warp"),
                         motion="auto") == 0
    result = only_child(tmp_path / "warp")
    run = json.loads((result / "run.json").read_text())
    assert run["motion"]["used"] == "aus" and "CC BY 4.0" in run["motion"]["primitives"]["terms"]
    frames = _frames(result)
    from media.images import load_rgb

    # Frame 0 carries no AU change, so the warp alone returns the template exactly; the apex moves the mouth.
    assert np.array_equal(frames[0], load_rgb(template, 128))
    change = np.abs(frames[run["apex"]] - frames[0]).sum(-1)
    assert change[80:110, 30:100].mean() > 3 * change[:40].mean()  # mouth region (128 px crop) against the brows
    assert change.max() > 20


def test_texture_without_motion_transfer_is_an_error(capsys):
    assert main(["--mode", "test", "--motion", "none", "--texture", "none", "--gpu_ids", "-1"]) == 2
    assert "--texture applies to motion transfer only" in capsys.readouterr().err


def test_motion_transfer_on_a_template_without_a_face_is_an_error_naming_it(tiny_ckpt, tmp_path, capsys):
    template = tmp_path / "grey.png"
    Image.fromarray(np.full((90, 90, 3), 128, np.uint8)).save(template)
    assert run_test_mode(tiny_ckpt, "--aus_matrix", str(EXAMPLES / "positive.csv"), "--template", str(template),
                         "--results_dir", str(tmp_path / "res"), "--no_video", motion="auto") == 2
    err = capsys.readouterr().err
    assert f"{template}: no face found in the template" in err and "--motion none" in err
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())  # nothing half-written


def test_clip_texture_without_a_clip_is_an_error(tiny_ckpt, tmp_path, capsys):
    """--texture clip with an AU matrix (--motion auto resolves to the AU path) would be silently ignored."""
    template = tmp_path / "grey.png"
    Image.fromarray(np.full((90, 90, 3), 128, np.uint8)).save(template)
    assert run_test_mode(tiny_ckpt, "--aus_matrix", str(EXAMPLES / "positive.csv"), "--template", str(template),
                         "--texture", "clip", "--results_dir", str(tmp_path / "res"), motion="auto") == 2
    assert "--texture clip takes the shading of a driving clip" in capsys.readouterr().err
