"""A flag that does not apply to the chosen mode is an error or a warning naming flag and mode, never silently
ignored; the seeds' flags keep their meaning (issue 23 items 10 and 11)."""
import json

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT
from main import main
from options import parse

MATRIX = ROOT / "examples" / "au_matrices" / "positive.csv"


def refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--mode", "test", "--out", "x"], "--out does not apply to --mode test: it is eval mode's output folder"),
    (["--mode", "test", "--aus_file", "NOPE.csv"], "--aus_file does not apply to --mode test"),
    (["--mode", "test", "--imgs_dir", "NOPE"], "--imgs_dir does not apply to --mode test"),
    (["--mode", "test", "--aus_schema", "n2me18"], "the checkpoint's generator decides the AU schema"),
    (["--mode", "train", "--ckpt", "x.pth"], "--ckpt does not apply to --mode train"),
    (["--mode", "eval", "--results", "R", "--data_root", "D"], "--data_root does not apply to --mode eval"),
    (["--mode", "test", "--ckpt", "a.pth", "--ckpt_dir", "RUN"], "--ckpt and --ckpt_dir both name the checkpoint"),
    (["--mode", "test", "--results", "a", "--results_dir", "b"], "give one")])
def test_flags_a_mode_would_ignore_are_refused(capsys, argv, says):
    assert says in refused(argv, capsys)


def test_other_flags_a_mode_does_not_read_are_warned_about(capsys):
    # ULME-GAN's own test command carries --serial_batches and --n_threads: harmless, so a warning, not an error
    opt = parse(["--mode", "test", "--serial_batches", "--n_threads", "0", "--gpu_ids", "-1"])
    err = capsys.readouterr().err
    assert "warning: --serial_batches does not apply to --mode test" in err and "--n_threads" in err
    assert opt.mode == "test"
    parse(["--mode", "test", "--data_root", "D", "--batch_size", "4", "--max_dataset_size", "9", "--fps", "30"])
    assert capsys.readouterr().err == ""  # what test mode reads is taken silently


def test_ulme_results_flag_is_where_test_mode_writes(tmp_path):
    template = tmp_path / "t.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(template)
    # --motion none: a flat grey template has no face for motion transfer (the seeds' generation runs on anything)
    assert main(["--mode", "test", "--motion", "none", "--aus_matrix", str(MATRIX), "--template", str(template),
                 "--results", str(tmp_path / "seed_style"), "--gpu_ids", "-1", "--no_progress", "--no_video",
                 "--max_dataset_size", "2", "--output_size", "128"]) == 0
    (run,) = list((tmp_path / "seed_style").iterdir())
    assert json.loads((run / "run.json").read_text())["frames"] == 2


def test_ckpt_file_with_load_epoch_is_refused(tmp_path, capsys):
    checkpoint = tmp_path / "epoch_0001.pth"
    checkpoint.write_bytes(b"x")
    assert main(["--mode", "test", "--ckpt", str(checkpoint), "--load_epoch", "7", "--aus_matrix", str(MATRIX),
                 "--gpu_ids", "-1"]) == 2
    assert f"--ckpt {checkpoint} names one checkpoint file, so --load_epoch 7 would be ignored" in \
        capsys.readouterr().err


# ------------------------------------------------------------------ issue 23 item 17: messages that say what and where

def test_bad_gpu_ids_results_dir_and_data_root_are_named(tmp_path, capsys):
    assert "--gpu_ids: 'abc': give -1 for the CPU, or GPU numbers" in refused(["--gpu_ids", "abc"], capsys)
    (tmp_path / "file").write_text("x")
    assert main(["--mode", "test", "--gpu_ids", "-1", "--results_dir", str(tmp_path / "file"), "--aus_matrix",
                 str(MATRIX)]) == 2
    assert f"--results_dir {tmp_path / 'file'} is a file: give a folder" in capsys.readouterr().err
    assert main(["--mode", "test", "--gpu_ids", "-1", "--data_root", str(tmp_path / "NOPE")]) == 2
    assert f"--data_root {tmp_path / 'NOPE'}: no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("check", [[], ["--check"]])
def test_calibrate_on_too_few_clips_is_one_line_not_a_table_of_nan(tmp_path, capsys, check):
    from openface import calibrate

    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_:
        calibrate.main(["--megc_root", str(tmp_path / "empty"), "--out", str(tmp_path / "c.json"), *check])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "0 clips with 2 or more measured frames" in err
    assert ("--check needs 1" if check else "leave-one-clip-out needs 3") in err and not (tmp_path / "c.json").exists()
