"""Bad input never corrupts a run or a score (issue 16): each test feeds one careless or hostile input and checks
that it gets a one-line error (exit 2), a warning, or a counted skip, and that nothing half-written is left."""
import csv
import json
import logging

import numpy as np
import pytest

from conftest import TINY_MODEL, make_tiny_dataset
from data.au_table import load_au_table
from data.sequences import read_au_matrix
from main import main
from openface.au_schema import OPENFACE_17

ONE_STEP = ["--batch_size", "4", "--max_steps", "1", "--niter", "1", "--niter_decay", "0"]


def train(data, ckpt_dir, *extra):
    return main(["--mode", "train", "--data_root", str(data), "--ckpt_dir", str(ckpt_dir), *TINY_MODEL, *ONE_STEP,
                 *extra])


def set_au(table: object, row: int, column: str, value: str) -> None:
    """Overwrite one cell of an AU CSV (row counts data rows from 0)."""
    lines = list(csv.reader(open(table)))
    lines[row + 1][lines[0].index(column)] = value
    with open(table, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(lines)


# ------------------------------------------------------------------ 1. AU values outside the schema's range

def test_au_value_out_of_range_names_file_row_and_column(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n=4, table="csv")
    set_au(data / "aus.csv", 2, "AU12", "450")
    with pytest.raises(ValueError) as err:
        load_au_table(data / "aus.csv", OPENFACE_17)
    message = str(err.value)
    assert str(data / "aus.csv") in message and "face0002" in message and "AU12=450" in message
    assert "--clip_aus" in message


def test_training_refuses_out_of_range_aus_and_clip_aus_clips_with_a_count(tmp_path, capsys, caplog):
    data = make_tiny_dataset(tmp_path / "d", n=12, table="csv")
    set_au(data / "aus.csv", 3, "AU04", "450")
    assert train(data, tmp_path / "ck", "--name", "typo") == 2
    assert "AU04=450" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING):
        assert train(data, tmp_path / "ck", "--name", "clipped", "--clip_aus") == 0
    assert "clipped 1 AU value(s)" in caplog.text


def test_au_matrix_out_of_range_is_refused_or_clipped_with_a_count(tmp_path, caplog):
    path = tmp_path / "m.csv"
    path.write_text("AU12,AU04\n1.0,0\n7.5,0\n6,0\n")
    with pytest.raises(ValueError, match=r"m.csv row 2: .*AU12=7.5"):
        read_au_matrix(path, OPENFACE_17)
    with caplog.at_level(logging.WARNING):
        clip = read_au_matrix(path, OPENFACE_17, clip_aus=True)
    assert clip.aus[:, OPENFACE_17.index("AU12")].tolist() == [1.0, 5.0, 5.0]
    assert "clipped 2 AU value(s)" in caplog.text


# ------------------------------------------------------------------ 13. one result folder is one result

def _frames(folder, n, stem="crop_img"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(folder / f"{stem}{i:03d}.jpg")
    return folder


def test_result_folder_with_frames_and_videos_is_one_result(tmp_path):
    from metrics.inputs import attach_inputs, find_results

    results = tmp_path / "results"
    for pair in ("casme2_Positive_asianFemale_X", "casme2_Negative_asianFemale_X"):
        _frames(results / pair, 3)
        (results / pair / "source.mp4").write_bytes(b"")  # the real clip, kept beside the frames (ULME-GAN)
        (results / pair / "target.mp4").write_bytes(b"")
    video_only = results / "samm_Surprise_westMale_X"
    video_only.mkdir()
    (video_only / "target.mp4").write_bytes(b"")
    (video_only / "source.mp4").write_bytes(b"")
    entries, _ = find_results(results)
    assert sorted(e.name for e in entries) == sorted(["casme2_Positive_asianFemale_X", "casme2_Negative_asianFemale_X",
                                                      "samm_Surprise_westMale_X"])
    kinds = {e.name: e.generated.frames is not None for e in entries}
    assert kinds["casme2_Positive_asianFemale_X"] and not kinds["samm_Surprise_westMale_X"]
    assert all(e.generated.path.name != "source.mp4" for e in entries)
    sources = tmp_path / "sources"
    for clip in ("casme2_Positive_asianFemale", "casme2_Negative_asianFemale", "smic_Negative_asianFemale"):
        _frames(sources / clip / "imgs", 2)
    notes = attach_inputs(entries, sources, None)
    assert any("1 of 3 source clips have no result" in n and "smic_Negative" in n for n in notes), notes


def test_ulme_result_folders_are_twelve_results_not_thirty_six():
    from conftest import SHARED_DATA
    from metrics.inputs import find_results

    root = SHARED_DATA / "ulme_megc2021_results"
    if not root.is_dir():
        pytest.skip(f"{root} not found (CI provides ../shared/data)")
    entries, _ = find_results(root)
    assert len(entries) == 12 and all(e.generated.frames for e in entries)


# ------------------------------------------------------------------ 2. gaps in frame folders are noticed

def test_numbering_gaps():
    from data.images import numbering_gaps

    assert numbering_gaps(["img46", "img47", "img50.jpg"]) == [48, 49]
    assert numbering_gaps(["000.png", "001.png", "002.png"]) == []
    assert numbering_gaps(["a1", "b3"]) == []  # no common numbering: nothing to check


def test_eval_reports_missing_result_frames_and_count_mismatch(tmp_path, capsys):
    run = tmp_path / "casme2_Positive_asianFemale_run"
    frames = _frames(run / "frames", 6, stem="")
    (frames / "002.jpg").unlink()
    (run / "run.json").write_text(json.dumps({"clip": "casme2_Positive_asianFemale", "frames": 6, "fps": 200}))
    assert main(["--mode", "eval", "--results", str(run), "--out", str(tmp_path / "eval"), "--no_report"]) == 1
    (record,) = json.loads((tmp_path / "eval" / "metrics.json").read_text())["pairs"]
    assert record["status"] == "incomplete" and record["frames"] == 5 and record["frames_expected"] == 6
    assert record["frame_gaps"] == [2]
    assert any("1 missing frame number(s): 2" in n for n in record["notes"])
    assert any("run.json records 6 frames but the result holds 5" in n for n in record["notes"])


def test_result_without_any_face_is_not_ok(tmp_path):
    from metrics.inputs import ResultEntry, Sequence
    from metrics.integrity import check_pair

    frames = sorted(_frames(tmp_path / "f", 3, stem="").iterdir())
    entry = ResultEntry("p", Sequence("p", tmp_path / "f", frames), run={"frames": 3})
    assert check_pair(entry, 3, 3)[0] == "no_face"
    assert check_pair(entry, 3, 2)[0] == "ok"


def test_test_mode_warns_about_a_missing_source_frame_and_records_it(tmp_path, caplog):
    from PIL import Image

    from data.au_table import save_au_table_csv

    pair = tmp_path / "casme2_Positive_x"
    _frames(pair / "imgs", 5, stem="img")
    (pair / "imgs" / "img002.jpg").unlink()
    _frames(pair / "imgs2", 1, stem="template")
    Image.new("RGB", (8, 8)).save(pair / "imgs2" / "template000.jpg")
    names = ["img000", "img001", "img003", "img004", "template000"]
    save_au_table_csv({n: np.zeros(17) for n in names}, pair / "aus.csv", OPENFACE_17)
    with caplog.at_level(logging.WARNING):
        assert main(["--mode", "test", "--data_root", str(pair), "--results_dir", str(tmp_path / "res"),
                     "--gpu_ids", "-1", "--no_progress", "--no_video", "--output_size", "128"]) == 0
    assert "1 missing frame number(s): 2" in caplog.text
    (out,) = (tmp_path / "res").iterdir()
    assert json.loads((out / "run.json").read_text())["source_frame_gaps"] == [2]


# ------------------------------------------------------------------ 3, 6, 9. run folders

def dead_pid() -> int:
    """The pid of a process that has ended (what a SIGKILL leaves behind)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_failed_start_does_not_block_its_name(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "d", n=12, table="csv")
    set_au(data / "aus.csv", 0, "AU01", "-3")
    assert train(data, tmp_path / "ck", "--name", "run") == 2
    assert main(["--resume", str(tmp_path / "ck" / "run"), "--no_progress"]) == 2
    assert "start it again with the same --name" in capsys.readouterr().err
    set_au(data / "aus.csv", 0, "AU01", "0.5")  # data fixed: the same name works
    assert train(data, tmp_path / "ck", "--name", "run") == 0
    assert (tmp_path / "ck" / "run" / "latest.pth").is_file()


def test_name_cannot_leave_ckpt_dir(tiny_data, tmp_path, capsys):
    assert train(tiny_data, tmp_path / "ck", "--name", "../../escaped") == 2
    assert "single folder name" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_second_process_on_a_run_folder_is_refused_and_a_stale_lock_taken_over(tiny_data, tmp_path, capsys, caplog):
    import socket
    import subprocess
    import sys

    assert train(tiny_data, tmp_path / "ck", "--name", "r") == 0
    run = tmp_path / "ck" / "r"
    assert not (run / ".lock").exists()  # released at the end of the run
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "t"}))
        before = (run / "latest.pth").stat().st_mtime_ns
        assert main(["--resume", str(run), "--no_progress", "--max_steps", "2"]) == 2
        err = capsys.readouterr().err
        assert f"in use by pid {holder.pid} on host {socket.gethostname()}" in err
        assert (run / "latest.pth").stat().st_mtime_ns == before  # nothing written by the refused process
    finally:
        holder.kill()
        holder.wait()
    with caplog.at_level(logging.WARNING):  # the holder was killed: its lock is stale
        assert main(["--resume", str(run), "--no_progress", "--max_steps", "2"]) == 0
    assert "stale lock" in caplog.text and not (run / ".lock").exists()


def test_lock_is_released_when_the_run_fails(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n=12)
    (data / "imgs" / "face0003.jpg").write_bytes(b"broken")
    assert train(data, tmp_path / "ck", "--name", "r") == 2
    assert not (tmp_path / "ck" / "r" / ".lock").exists()


def test_stale_temp_files_of_killed_processes_are_removed(tiny_data, tmp_path, caplog):
    assert train(tiny_data, tmp_path / "ck", "--name", "r") == 0
    run = tmp_path / "ck" / "r"
    stale = run / f".latest.pth.tmp{dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING):
        assert main(["--resume", str(run), "--no_progress", "--max_steps", "2"]) == 0
    assert not stale.exists() and "removed 1 stale temporary file" in caplog.text


def test_stale_hidden_result_folders_are_removed(tmp_path):
    from PIL import Image

    from conftest import ROOT

    results = tmp_path / "res"
    stale = results / f".positive_x.tmp{dead_pid()}"
    (stale / "frames").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(tmp_path / "t.png")
    assert main(["--mode", "test", "--aus_matrix", str(ROOT / "examples" / "au_matrices" / "positive.csv"),
                 "--template", str(tmp_path / "t.png"), "--results_dir", str(results), "--gpu_ids", "-1",
                 "--no_progress", "--no_video", "--max_dataset_size", "2", "--output_size", "128"]) == 0
    assert not stale.exists() and len(list(results.iterdir())) == 1


# ------------------------------------------------------------------ 7. flags on --resume: one rule

@pytest.mark.parametrize("flag, value, old", [("--ngf", "16", "8"), ("--final_size", "64", "32")])
def test_resume_with_another_architecture_is_an_error_naming_both_values(tiny_data, tmp_path, capsys, flag, value,
                                                                         old):
    assert train(tiny_data, tmp_path / "ck", "--name", "r") == 0
    assert main(["--resume", str(tmp_path / "ck" / "r"), "--no_progress", flag, value]) == 2
    err = capsys.readouterr().err
    assert f"{flag} {value} (the run has {old})" in err


def test_resume_with_other_data_is_logged_loudly(tiny_data, tmp_path, caplog):
    assert train(tiny_data, tmp_path / "ck", "--name", "r") == 0
    other = make_tiny_dataset(tmp_path / "other", n=12, seed=3)
    with caplog.at_level(logging.WARNING):
        assert main(["--resume", str(tmp_path / "ck" / "r"), "--no_progress", "--max_steps", "2",
                     "--data_root", str(other)]) == 0
    assert f"--data_root changed on resume ('{tiny_data}' -> '{other}')" in caplog.text
