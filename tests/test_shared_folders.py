"""Writers of a shared results folder (issue 23): two batches at once, a batch stopped half-way and run again,
Ctrl-C, and temporary folders of runs on other hosts."""
import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.au_schema import OPENFACE_17


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def megc_pairs(root, names=("casme2_Positive_a", "casme2_Positive_b")):
    from data.au_table import save_au_table_csv

    for name in names:
        pair = root / name
        for sub, stems in (("imgs", ("img000", "img001", "img002")), ("imgs2", ("t000",))):
            (pair / sub).mkdir(parents=True)
            for i, stem in enumerate(stems):
                Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(pair / sub / f"{stem}.jpg")
        save_au_table_csv({n: np.zeros(17) for n in ("img000", "img001", "img002", "t000")}, pair / "aus.csv",
                          OPENFACE_17)
    return root


def batch_args(megc, out):
    # --motion none: the pairs' templates are generated cartoon faces, with no landmarks for motion transfer
    return ["--megc_root", str(megc), "--motion", "none", "--results_dir", str(out), "--gpu_ids", "-1", "--no_video",
            "--output_size", "128", "--no_progress"]


def test_a_result_folder_taken_meanwhile_goes_to_the_next_name(tmp_path):
    """Item 2: the second of two writers of one result name gets name_2, and keeps its output."""
    from solvers.tester import publish

    taken = tmp_path / "pair_x"
    (taken / "frames").mkdir(parents=True)  # the other batch's finished result
    mine = tmp_path / ".pair_x.tmp1"
    (mine / "frames").mkdir(parents=True)
    (mine / "run.json").write_text("{}")
    assert publish(mine, taken) == tmp_path / "pair_x_2"
    assert (tmp_path / "pair_x_2" / "run.json").is_file() and (taken / "frames").is_dir() and not mine.exists()


def test_two_batches_claim_two_index_names(tmp_path):
    """Item 2: the index name is claimed by creating it, so a second batch started at once never shares it."""
    from for_megc2021 import batch_output_paths

    first, second = batch_output_paths(tmp_path), batch_output_paths(tmp_path)
    assert (first[0].name, second[0].name) == ("index.csv", "index_2.csv")
    assert first[0].read_text().startswith("pair,") and second[1].name == "contact_sheet_2.png"


@pytest.mark.slow
def test_an_interrupted_batch_keeps_its_index_and_the_rerun_reuses_its_results(tmp_path, monkeypatch, capsys):
    """Items 5 and 13: Ctrl-C after the first pair leaves an index of that pair and one line (exit 130); the same
    command again reuses that result and generates only the other pair (no _2 orphans)."""
    import for_megc2021

    megc, out = megc_pairs(tmp_path / "megc"), tmp_path / "out"
    real = for_megc2021.generate_sequence
    calls = []

    def stopped_on_the_second(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(for_megc2021, "generate_sequence", stopped_on_the_second)
    assert for_megc2021.main(batch_args(megc, out)) == 130
    err = capsys.readouterr().err
    assert "interrupted: the pairs done are listed" in err and "Traceback" not in err
    (done,) = list(csv.DictReader(open(out / "index.csv")))
    assert done["status"] == "ok" and done["pair"] == "casme2_Positive_a"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written folder
    calls.clear()
    monkeypatch.setattr(for_megc2021, "generate_sequence", real)
    assert for_megc2021.main(batch_args(megc, out)) == 0
    rows = list(csv.DictReader(open(out / "index_2.csv")))
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["out_dir"] == done["out_dir"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(Path(r["out_dir"]).name for r in rows)


def test_ctrl_c_in_test_mode_is_one_line(tmp_path, monkeypatch, capsys):
    """Item 13."""
    import main as main_module

    class Stops:
        def run(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(main_module, "create_solver", lambda opt: Stops())
    assert main_module.main(["--mode", "test", "--gpu_ids", "-1"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted:") and "Traceback" not in err


def test_temporary_folders_record_their_host_and_another_hosts_are_left_alone(tmp_path):
    """Item 18: on a results folder shared between machines a pid means nothing on another host."""
    from solvers.run_folder import remove_stale_temp, temp_path

    mine = temp_path(tmp_path / "pair")
    assert mine.name == f".pair.tmp{os.getpid()}@{socket.gethostname()}"
    dead = dead_pid()
    here, elsewhere, old_style = (tmp_path / f".a.tmp{dead}@{socket.gethostname()}",
                                  tmp_path / f".b.tmp{dead}@another-host.example.org", tmp_path / f".c.tmp{dead}")
    for folder in (mine, here, elsewhere, old_style):
        folder.mkdir()
    assert sorted(p.name for p in remove_stale_temp(tmp_path)) == sorted([here.name, old_style.name])
    assert mine.is_dir() and elsewhere.is_dir()


@pytest.mark.parametrize("extra, says", [
    (["--templates", "T"], "--templates does not apply to for_megc2021.py with --megc_root"),
    (["--aus_matrix", "m.csv"], "--aus_matrix does not apply to for_megc2021.py"),
    (["--data_root", "D"], "--data_root does not apply to for_megc2021.py")])
def test_batch_refuses_test_mode_flags_it_would_ignore(tmp_path, capsys, extra, says):
    """Item 11: the dry run used to show imgs2/ with --templates T, and --aus_matrix changed nothing."""
    from for_megc2021 import main as megc_main

    with pytest.raises(SystemExit) as exit_:
        megc_main(["--megc_root", str(tmp_path), "--dry_run", *extra])
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_batch_input_errors_name_the_folder(tmp_path, capsys):
    """Item 16: an empty --templates folder, --templates naming an image, an empty --megc_root."""
    from for_megc2021 import main as megc_main

    megc_pairs(tmp_path / "clips", ("clip_a",))
    (tmp_path / "empty").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "face.jpg")
    base = ["--clips", str(tmp_path / "clips"), "--dry_run", "--gpu_ids", "-1"]
    assert megc_main([*base, "--templates", str(tmp_path / "empty")]) == 2
    assert f"--templates {tmp_path / 'empty'}: no images in it" in capsys.readouterr().err
    assert megc_main([*base, "--templates", str(tmp_path / "face.jpg")]) == 2
    assert f"--templates {tmp_path / 'face.jpg'}: not a folder; give a folder of template face images" in \
        capsys.readouterr().err
    assert megc_main(["--megc_root", str(tmp_path / "empty"), "--dry_run", "--gpu_ids", "-1"]) == 2
    assert "no pair folders (a folder with imgs/ and imgs2/)" in capsys.readouterr().err


def test_one_writer_at_a_time_in_an_output_folder(tmp_path):
    """openface.prepare's OUT and eval's --out: a live holder is named (refused, or waited for), a dead one's lock on
    this host is taken over, another host's is never judged from here."""
    import json
    import threading

    from media.folder_lock import FolderInUseError, FolderLock

    lock = tmp_path / ".lock"
    with FolderLock(tmp_path, "first"):
        with pytest.raises(FolderInUseError, match=rf"being written by first \(pid {os.getpid()} on host"):
            with FolderLock(tmp_path, "second"):
                pass
        released = threading.Timer(0.5, lambda: lock.unlink())
        released.start()
        with FolderLock(tmp_path, "waiting", wait_s=10):  # waits for the first writer, then writes
            assert json.loads(lock.read_text())["command"] == "waiting"
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with FolderLock(tmp_path, "after a crash"):
        assert json.loads(lock.read_text())["command"] == "after a crash"
    lock.write_text(json.dumps({"pid": dead_pid(), "host": "another-host.example.org"}))
    with pytest.raises(FolderInUseError, match="on host another-host.example.org"):
        with FolderLock(tmp_path, "here"):
            pass
