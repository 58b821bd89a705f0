"""Bad input never corrupts a run or a score (issue 16): each test feeds one careless or hostile input and checks
that it gets a one-line error (exit 2), a warning, or a counted skip, and that nothing half-written is left."""
import csv
import json
import logging
import os

import numpy as np
import pytest

from catalog.au_schema import OPENFACE_17
from data.au_table import load_au_table
from data.sequences import read_au_matrix
from helpers import TINY_MODEL, make_tiny_dataset
from main import main

ONE_STEP = ["--batch_size", "4", "--max_steps", "1", "--niter", "1", "--niter_decay", "0"]


def train(data, ckpt_dir, *extra):
    return main(["--mode", "train", "--data_root", str(data), "--ckpt_dir", str(ckpt_dir), *TINY_MODEL, *ONE_STEP,
                 *extra])


def train_image(data, k: int = 0):
    """The k-th image of the training split (the deterministic split holds one of 12 out)."""
    from media.images import deterministic_split

    names = sorted(p.stem for p in (data / "imgs").iterdir())
    return data / "imgs" / f"{deterministic_split(names)[0][k]}.jpg"


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


def test_a_batch_folder_is_its_results_not_its_sheets_and_one_clip_in_two_containers_is_one(tmp_path):
    """Issue 23 items 3 and 7: two batches' contact sheets at the root are no result; target.mp4 + target.gif of a
    result folder without frames/ are one result (the mp4)."""
    from metrics.inputs import find_results

    results = tmp_path / "R"
    for pair in ("casme2_Positive_a_run", "casme2_Negative_a_run"):
        _frames(results / pair / "frames", 3)
        (results / pair / "run.json").write_text("{}")
    for sheet in ("contact_sheet.png", "contact_sheet_2.png"):
        _frames(tmp_path / "sheet", 1)
        (tmp_path / "sheet" / "crop_img000.jpg").rename(results / sheet)
    (results / "index.csv").write_text("pair,status\n")
    no_frames = results / "samm_Surprise_b_run"
    no_frames.mkdir()
    for video in ("target.mp4", "target.gif", "source.mp4", "compare.mp4"):
        (no_frames / video).write_bytes(b"")
    entries, _ = find_results(results)
    assert sorted(e.name for e in entries) == ["casme2_Negative_a_run", "casme2_Positive_a_run", "samm_Surprise_b_run"]
    (video,) = [e.generated.path for e in entries if e.generated.frames is None]
    assert video.name == "target.mp4"


def test_a_damaged_run_json_fails_that_result_only(tmp_path, capsys):
    """Issue 23 item 14: the file is named and the other results are scored."""
    results = tmp_path / "R"
    for pair in ("casme2_Positive_a_run", "casme2_Negative_a_run"):
        _frames(results / pair / "frames", 3)
        (results / pair / "run.json").write_text(json.dumps({"frames": 3, "fps": 30}))
    (results / "casme2_Negative_a_run" / "run.json").write_text('{"frames": 3,\n')
    assert main(["--mode", "eval", "--results", str(results), "--out", str(tmp_path / "eval"), "--no_report"]) == 1
    pairs = {p["pair"]: p for p in json.loads((tmp_path / "eval" / "metrics.json").read_text())["pairs"]}
    bad = pairs["casme2_Negative_a_run"]
    assert bad["status"] == "failed" and f"{results / 'casme2_Negative_a_run' / 'run.json'}: cannot be read" in \
        bad["error"]
    assert pairs["casme2_Positive_a_run"]["status"] != "failed"


def test_ulme_result_folders_are_twelve_results_not_thirty_six():
    from helpers import SHARED_DATA
    from metrics.inputs import find_results

    root = SHARED_DATA / "ulme_megc2021_results"
    if not root.is_dir():
        pytest.skip(f"{root} not found (CI provides ../shared/data)")
    entries, _ = find_results(root)
    assert len(entries) == 12 and all(e.generated.frames for e in entries)


# ------------------------------------------------------------------ 2. gaps in frame folders are noticed

def test_numbering_gaps():
    from media.images import numbering_gaps

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
    source = sorted(_frames(tmp_path / "s", 5, stem="img").iterdir())[::2]  # a deliberate subsample of the source
    entry.source = Sequence("s", tmp_path / "s", source)
    status, fields, notes = check_pair(entry, 3, 0)
    assert status == "ok" and fields["source_frame_gaps"] == [1, 3] and "source frames: 2 missing" in notes[0]


@pytest.mark.slow
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
        assert main(["--mode", "test", "--motion", "none",
                     "--data_root", str(pair), "--results_dir", str(tmp_path / "res"),
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
    train_image(data).write_bytes(b"broken")
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


@pytest.mark.slow
def test_stale_hidden_result_folders_are_removed(tmp_path):
    from PIL import Image

    from helpers import ROOT

    results = tmp_path / "res"
    stale = results / f".positive_x.tmp{dead_pid()}"
    (stale / "frames").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(tmp_path / "t.png")
    assert main(["--mode", "test", "--motion", "none",
                 "--aus_matrix", str(ROOT / "examples" / "au_matrices" / "positive.csv"),
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


@pytest.mark.slow
def test_resume_with_other_data_is_logged_loudly(tiny_data, tmp_path, caplog):
    assert train(tiny_data, tmp_path / "ck", "--name", "r") == 0
    other = make_tiny_dataset(tmp_path / "other", n=12, seed=3)
    with caplog.at_level(logging.WARNING):
        assert main(["--resume", str(tmp_path / "ck" / "r"), "--no_progress", "--max_steps", "2",
                     "--data_root", str(other)]) == 0
    assert f"--data_root changed on resume ('{tiny_data}' -> '{other}')" in caplog.text


def test_resume_after_the_data_files_changed_is_logged_loudly(tmp_path, caplog):
    """Issue 23: every resume re-checks its inputs. Same --data_root, but an image replaced since the checkpoint."""
    data = make_tiny_dataset(tmp_path / "data", n=12)
    assert train(data, tmp_path / "ck", "--name", "r") == 0
    with caplog.at_level(logging.WARNING):
        assert main(["--resume", str(tmp_path / "ck" / "r"), "--no_progress", "--max_steps", "2"]) == 0
    assert "changed since the run saved" not in caplog.text  # nothing changed: nothing said
    os.utime(train_image(data), ns=(1, 1))
    with caplog.at_level(logging.WARNING):
        assert main(["--resume", str(tmp_path / "ck" / "r"), "--no_progress", "--max_steps", "3"]) == 0
    assert f"the files under --data_root {data} changed since the run saved its checkpoint" in caplog.text


# ------------------------------------------------------------------ 11. one-line errors, numbers checked at parse time

@pytest.mark.parametrize("flags", [["--fps", "-5"], ["--fps", "0.001"], ["--fps", "inf"], ["--fps", "0"],
                                   ["--batch_size", "0"], ["--n_threads", "-1"]])
def test_bad_numbers_are_refused_while_parsing(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as stop:
        main(["--mode", "test", "--motion", "none", "--aus_matrix", str(tmp_path / "never_read.csv"), *flags])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flags[0]}" in err and "Traceback" not in err


def _template(tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), "gray").save(tmp_path / "t.png")
    return tmp_path / "t.png"


def _au_matrix_test(tmp_path, *extra):
    from helpers import ROOT

    return main(["--mode", "test", "--motion", "none",
                 "--aus_matrix", str(ROOT / "examples" / "au_matrices" / "positive.csv"),
                 "--template", str(_template(tmp_path)), "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1",
                 "--no_progress", "--max_dataset_size", "2", "--output_size", "128", *extra])


@pytest.mark.parametrize("errno_name", ["ENOSPC", "EROFS"])
@pytest.mark.slow
def test_full_or_read_only_output_folder_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, errno_name):
    import errno

    from media import frames as media

    def no_space(*args, **kwargs):
        raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)), str(tmp_path / "res"))

    monkeypatch.setattr(media, "write_png_frames", no_space)
    assert _au_matrix_test(tmp_path, "--no_video") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "choose another output folder" in err and "Traceback" not in err
    assert list((tmp_path / "res").iterdir()) == []  # no result folder, no hidden temp folder


def test_disk_full_during_a_checkpoint_save_is_one_line_and_keeps_nothing_partial(tiny_data, tmp_path, capsys,
                                                                                  monkeypatch):
    import torch

    def full_disk(state, path, *args, **kwargs):
        open(path, "wb").write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\\n"
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    assert train(tiny_data, tmp_path / "ck", "--name", "r") == 2
    err = capsys.readouterr().err
    assert "could not write the checkpoint" in err and "disk full" in err and "Traceback" not in err
    assert [p.name for p in (tmp_path / "ck" / "r").glob("*.pth*")] == []
    assert list((tmp_path / "ck" / "r").glob(".*tmp*")) == []


def test_image_over_the_pixel_limit_is_named_and_skip_bad_skips_it(tmp_path, capsys, monkeypatch, caplog):
    from PIL import Image

    data = make_tiny_dataset(tmp_path / "d", n=12)
    victim = train_image(data)
    Image.new("RGB", (200, 200), "white").save(victim)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 36 * 36)  # 200x200 is over twice the limit: PIL refuses it
    assert train(data, tmp_path / "ck", "--name", "a") == 2
    err = capsys.readouterr().err
    assert victim.name in err and "pixel limit" in err and "--skip_bad" in err
    with caplog.at_level(logging.WARNING):
        assert train(data, tmp_path / "ck", "--name", "b", "--skip_bad") == 0
    assert "skipping 1 unreadable image(s)" in caplog.text


@pytest.mark.parametrize("content, message", [
    ('{"frame1": [0, 1]}', "a name -> vector object is an AU table"),
    ("[[0, 1], [2]]", "row 1 is not a list of 17 numbers"),
    ("not json", "invalid JSON")])
def test_bad_json_au_matrix_is_one_line(tmp_path, capsys, content, message):
    (tmp_path / "m.json").write_text(content)
    assert main(["--mode", "test", "--motion", "none", "--aus_matrix", str(tmp_path / "m.json"), "--template",
                 str(_template(tmp_path)), "--gpu_ids", "-1"]) == 2
    assert message in capsys.readouterr().err


def test_prepare_aus_pickle_errors_are_one_line(tmp_path, capsys):
    from data.prepare_aus import main as prepare_main

    (tmp_path / "aus.pkl").write_bytes(np.random.default_rng(1).bytes(64))
    assert prepare_main(["--pickle", str(tmp_path / "aus.pkl"), "--out", str(tmp_path / "aus.csv")]) == 2
    assert prepare_main(["--pickle", str(tmp_path / "none.pkl"), "--out", str(tmp_path / "aus.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot read AU pickle" in err and "AU table not found" in err and not (tmp_path / "aus.csv").exists()


def test_export_of_a_checkpoint_with_the_marker_but_no_keys_is_one_line(tmp_path, capsys):
    import torch

    from checkpoints import native as ckpt
    from tools.export_generator import main as export_main

    torch.save({"kind": ckpt.KIND, "format_version": 1}, tmp_path / "epoch_0001.pth")
    assert export_main([str(tmp_path / "epoch_0001.pth"), "--out", str(tmp_path / "g.pth")]) == 2
    assert "damaged checkpoint" in capsys.readouterr().err and not (tmp_path / "g.pth").exists()


# ------------------------------------------------------------------ 12. no silent changes, no misleading words

def test_ragged_au_matrix_rows_are_an_error_not_zeros(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("AU12,AU04\n1.0,0.5\n2.0\n")
    with pytest.raises(ValueError, match=r"m.csv, line 3: 1 values for 2 columns"):
        read_au_matrix(path, OPENFACE_17)
    path.write_text("AU12,AU04\n1.0,\n")
    with pytest.raises(ValueError, match=r"line 2, column AU04: '' is not a number"):
        read_au_matrix(path, OPENFACE_17)


@pytest.mark.slow
def test_images_without_an_au_row_are_left_out_with_a_log_line(tmp_path, caplog):
    data = make_tiny_dataset(tmp_path / "d", n=12, table="csv")
    lines = (data / "aus.csv").read_text().splitlines()
    (data / "aus.csv").write_text("\n".join(lines[:-2]) + "\n")  # the last two images lose their AU rows
    with caplog.at_level(logging.WARNING):
        assert train(data, tmp_path / "ck", "--name", "r") == 0
    assert "leaving out 2 image(s)" in caplog.text and "face0011" in caplog.text


@pytest.mark.slow
def test_template_without_a_face_is_warned_about(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert _au_matrix_test(tmp_path, "--no_video") == 0
    assert "no face found in the template" in caplog.text


def test_missing_template_file_is_named_as_missing(tmp_path, capsys):
    from helpers import ROOT

    assert main(["--mode", "test", "--motion", "none",
                 "--aus_matrix", str(ROOT / "examples" / "au_matrices" / "positive.csv"),
                 "--template", str(tmp_path / "typo.png"), "--gpu_ids", "-1"]) == 2
    err = capsys.readouterr().err
    assert "typo.png: no such image file" in err and "needs a template face" not in err


def test_random_bytes_are_not_called_pickled_objects(tmp_path, capsys):
    # a pickle protocol header, then noise: the unpickler stops on an unknown opcode (same bytes every run)
    (tmp_path / "net_G.pth").write_bytes(b"\x80\x02" + np.random.default_rng(0).bytes(4096))
    assert main(["--mode", "test", "--motion", "none", "--ckpt", str(tmp_path / "net_G.pth"), "--gpu_ids", "-1",
                 "--aus_matrix", "x.csv"]) == 2
    err = capsys.readouterr().err
    assert "not a PyTorch checkpoint (damaged" in err and "pickles Python objects" not in err


@pytest.mark.slow
def test_test_mode_does_not_suggest_skip_bad(tmp_path, capsys):
    from data.au_table import save_au_table_csv

    pair = tmp_path / "pair"
    _frames(pair / "imgs", 3, stem="img")
    _frames(pair / "imgs2", 1, stem="t")
    (pair / "imgs" / "img001.jpg").write_bytes(b"broken")
    save_au_table_csv({n: np.zeros(17) for n in ("img000", "img001", "img002", "t000")}, pair / "aus.csv",
                      OPENFACE_17)
    assert main(["--mode", "test", "--motion", "none", "--data_root", str(pair), "--results_dir", str(tmp_path / "res"),
                 "--gpu_ids", "-1", "--no_progress", "--output_size", "128"]) == 2
    err = capsys.readouterr().err
    assert "img001.jpg: cannot read image" in err and "--skip_bad" not in err


def test_hints_quote_paths_with_spaces(tiny_data, tmp_path, capsys):
    ck = tmp_path / "my runs"
    assert train(tiny_data, ck, "--name", "r") == 0
    assert train(tiny_data, ck, "--name", "r") == 2
    assert f"--resume '{ck / 'r'}'" in capsys.readouterr().err
    import shlex

    recorded = shlex.split((ck / "r" / "command.txt").read_text().splitlines()[0])
    assert recorded[recorded.index("--ckpt_dir") + 1] == str(ck)  # the command as run, its paths quoted


# ------------------------------------------------------------------ 4. a bad image mid-run, with loader workers

@pytest.mark.parametrize("workers", ["0", "2"])
def test_bad_image_mid_run_exits_2_and_saves_with_or_without_workers(tmp_path, capsys, workers):
    data = make_tiny_dataset(tmp_path / "d", n=12)
    for k in range(6):  # half the training images: the first batches meet one whatever the shuffle
        train_image(data, k).write_bytes(b"broken")
    assert train(data, tmp_path / "ck", "--name", "r", "--cache_images", "off", "--n_threads", workers,
                 "--max_steps", "10") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: ") and ": cannot read image" in err[0] and "Traceback" not in "\n".join(err)
    assert (tmp_path / "ck" / "r" / "latest.pth").is_file()


# ------------------------------------------------------------------ 8. a batch never overwrites another's records

@pytest.mark.slow
def test_second_batch_in_the_same_results_dir_keeps_the_first_index_and_sheet(tmp_path):
    from PIL import Image

    from data.au_table import save_au_table_csv
    from for_megc2021 import main as megc_main

    pair = tmp_path / "megc" / "casme2_Positive_x"
    _frames(pair / "imgs", 3, stem="img")
    _frames(pair / "imgs2", 1, stem="t")
    save_au_table_csv({n: np.zeros(17) for n in ("img000", "img001", "img002", "t000")}, pair / "aus.csv",
                      OPENFACE_17)
    out = tmp_path / "out"
    args = ["--megc_root", str(tmp_path / "megc"), "--motion", "none", "--results_dir", str(out), "--gpu_ids", "-1",
            "--no_video", "--output_size", "128", "--no_progress"]
    assert megc_main(args) == 0
    first_index, first_sheet = (out / "index.csv").read_bytes(), (out / "contact_sheet.png").read_bytes()
    assert megc_main(args) == 0
    assert (out / "index.csv").read_bytes() == first_index
    assert (out / "contact_sheet.png").read_bytes() == first_sheet
    second = list(csv.DictReader(open(out / "index_2.csv")))
    first = list(csv.DictReader(open(out / "index.csv")))
    # the same request (checkpoint, settings, input files): the first result is reused, not a duplicate made
    assert second[0]["out_dir"] == first[0]["out_dir"] and Image.open(out / "contact_sheet_2.png").size[0] == 3 * 128
    os.utime(pair / "imgs" / "img001.jpg", ns=(1, 1))  # an input changed since: generated again, into _2
    assert megc_main(args) == 0
    third = list(csv.DictReader(open(out / "index_3.csv")))
    assert third[0]["out_dir"] == first[0]["out_dir"] + "_2"


# ------------------------------------------------------------------ 5. servers bind to localhost only

def test_every_visdom_server_command_binds_localhost():
    from helpers import ROOT

    helper_path = ROOT / "tests" / "helpers" / "visdom_server.py"
    texts = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("solvers/*.py"), helper_path]
    commands = [(path.name, line) for path in texts for line in path.read_text().splitlines()
                if "python -m visdom.server" in line]
    assert len(commands) >= 3  # README, the no-server warning, the test helper's docstring
    for name, line in commands:
        assert "-bind_local" in line, f"{name}: {line.strip()}"
    helper = helper_path.read_text()  # the server the test suite starts
    assert '"visdom.server"' in helper and '"-bind_local"' in helper
    assert not any("0.0.0.0" in path.read_text() for path in texts)


# ------------------------------------------------------------------ 10. test mode streams the sequence

@pytest.mark.slow
def test_test_mode_never_holds_the_whole_sequence(tmp_path, monkeypatch, caplog):
    """Every array of frames handled while writing is at most one batch long; videos and GIF still hold every
    frame. (Memory flat in the sequence length: measured by tools/measure_test_memory.py, docs/robustness.md.)"""
    from PIL import Image

    from media import frames as media
    from media.video import probe_video

    longest = []
    for name in ("resize_frames", "side_by_side"):
        original = getattr(media, name)

        def spy(frames, *args, _original=original, **kwargs):
            longest.append(len(frames))
            return _original(frames, *args, **kwargs)

        monkeypatch.setattr(media, name, spy)
    with caplog.at_level(logging.WARNING):
        assert _au_matrix_test(tmp_path, "--batch_size", "4", "--max_dataset_size", "30", "--factor", "3") == 0
    assert longest and max(longest) <= 4
    (out,) = (tmp_path / "res").iterdir()
    assert len(list((out / "frames").glob("*.png"))) == 30
    assert probe_video(out / "target.mp4")["frames"] == 30
    assert probe_video(out / "compare.mp4")["frames"] == 30
    with Image.open(out / "target.gif") as gif:
        assert gif.n_frames == 30
    assert "target AU value(s) above 5 clipped" in caplog.text  # 12: magnification clipping is counted


# ------------------------------------------------------------------ issue 23: frames of one clip keep one scale

def test_sixteen_bit_frames_keep_one_scale(tmp_path):
    """Item 6: two identical 16-bit frames, one with a single hot pixel, decoded the same (before: 157.6 and 60.0
    mean brightness, each frame stretched by its own min and max)."""
    from PIL import Image

    from media.images import load_rgb

    frame = np.full((32, 32), 20000, np.uint16)
    frame[8:24, 8:24] = 40000
    hot = frame.copy()
    hot[0, 0] = 65535
    Image.fromarray(frame).save(tmp_path / "a.png")
    Image.fromarray(hot).save(tmp_path / "b.png")
    a, b = load_rgb(tmp_path / "a.png"), load_rgb(tmp_path / "b.png")
    assert b[0, 0, 0] == 255 and a[16, 16, 0] == round(40000 / 257)
    b[0, 0] = a[0, 0]
    assert np.array_equal(a, b)  # every other pixel the same


def test_a_frame_of_another_size_in_a_measured_clip_is_an_error_naming_it():
    """Item 4: with --pre_treatment a frame of another size became the apex (AU sum 20.6 against about 6)."""
    from openface.frontend import measure_images

    class NotReached:
        def measure(self, rgb, name):
            return None

    frames = [("img1.jpg", np.zeros((64, 48, 3), np.uint8)), ("img2.jpg", np.zeros((64, 48, 3), np.uint8)),
              ("img3.jpg", np.zeros((80, 60, 3), np.uint8))]
    with pytest.raises(ValueError, match=r"img3.jpg: 60x80 px, but the clip's first frame img1.jpg is 48x64"):
        measure_images(frames, ("AU01",), NotReached())


def test_au_matrix_from_excel_or_in_latin1_is_read_or_named(tmp_path):
    """Issue 23 item 15: Excel's "CSV UTF-8" starts with a byte-order mark (before: unknown column '\\ufeffframe');
    a latin-1 file's error names the file and the fix."""
    text = "frame,AU12\n0,1.5\n1,2.5\n"
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    clip = read_au_matrix(tmp_path / "excel.csv", OPENFACE_17)
    assert clip.aus[:, OPENFACE_17.names.index("AU12")].tolist() == [1.5, 2.5]
    (tmp_path / "latin1.csv").write_bytes("frame,AU12\n0,1.5 # é\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv: not UTF-8 text .*save it as UTF-8"):
        read_au_matrix(tmp_path / "latin1.csv", OPENFACE_17)
    table = tmp_path / "aus.csv"
    table.write_bytes(b"\xef\xbb\xbfname," + ",".join(OPENFACE_17.names).encode() + b"\nimg1," +
                      ",".join(["0.5"] * 17).encode() + b"\n")
    assert load_au_table(table, OPENFACE_17)["img1"].tolist() == [0.5] * 17
