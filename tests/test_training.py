"""End-to-end training through main.py on tiny generated data (and a few steps on real MEGC2021 frames)."""
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from checkpoints import locate, read
from checkpoints import native as ckpt
from helpers import ROOT, TINY_MODEL, make_tiny_dataset
from main import main
from monitor.logs import read_stats

# 11 training images (one held out by the deterministic split) in batches of 4: 2 steps per epoch.
SCHEDULE = ["--batch_size", "4", "--niter", "2", "--niter_decay", "1", "--train_gen_iter", "2",
            "--print_losses_freq", "4", "--sample_img_freq", "8"]


def train(data, ckpt_dir, *extra):
    return main(["--mode", "train", "--data_root", str(data), "--ckpt_dir", str(ckpt_dir), *TINY_MODEL, *SCHEDULE,
                 *extra])


@pytest.mark.slow
def test_training_writes_samples_stats_checkpoints(tiny_data, tmp_path):
    assert train(tiny_data, tmp_path / "ck", "--name", "run") == 0
    run = tmp_path / "ck" / "run"
    assert sorted(p.name for p in run.glob("epoch_*.pth")) == ["epoch_0001.pth", "epoch_0002.pth", "epoch_0003.pth"]
    assert not (run / "latest.pth").exists()
    stats = read_stats(run / "stats.jsonl")
    assert [s["step"] for s in stats] == [1, 2, 3, 4, 5, 6] or stats[-1]["step"] == 6
    assert {"D/total", "D/gp", "lr"} <= set(stats[-1]) and any("G/aus" in s for s in stats)
    assert stats[-1]["lr"] == pytest.approx(1e-4 / 2)  # epoch 3 = first and only decay epoch
    assert list((run / "samples").glob("step_*.png"))
    assert "training 11 images" in (run / "log.txt").read_text()
    assert json.loads((run / "options.json").read_text())["batch_size"] == 4
    assert (run / "train_ids.txt").read_text().count("\n") == 11  # the deterministic split is written down
    state = torch.load(run / "epoch_0003.pth", weights_only=True)  # plain tensors and types only
    assert state["progress"]["epoch"] == 3 and state["progress"]["step"] == 6
    assert state["model"]["generator"]["aus_nc"] == 17


def _final_state(run):
    return torch.load(run / "epoch_0003.pth", weights_only=True)


def _assert_same_tensors(a, b, path=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"differs at {path}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{path}[{i}]")


@pytest.mark.slow
def test_resume_reads_its_checkpoint_once(tiny_data, tmp_path, monkeypatch):
    assert train(tiny_data, tmp_path / "ck", "--name", "run", "--max_steps", "1") == 0
    reads = []
    real_read = ckpt.read_native
    monkeypatch.setattr(ckpt, "read_native", lambda path, *where: (reads.append(path.name), real_read(path, *where))[1])
    assert main(["--resume", str(tmp_path / "ck" / "run"), "--max_steps", "2", "--no_progress"]) == 0
    assert reads == ["latest.pth"]  # create_solver reads it and hands the state to the trainer


@pytest.mark.parametrize("stop_at, model", [(3, "ganimation"), (4, "ganimation"), (3, "n2me_unet")])
@pytest.mark.slow
def test_resume_gives_identical_weights(tiny_data, tmp_path, stop_at, model):
    # Mid-epoch and exactly at an epoch boundary; and N2ME's U-Net through the same trainer.
    assert train(tiny_data, tmp_path / "ck", "--name", "straight", "--model", model) == 0
    assert train(tiny_data, tmp_path / "ck", "--name", "split", "--max_steps", str(stop_at), "--model", model) == 0
    split = tmp_path / "ck" / "split"
    stopped = read(locate.find_checkpoint(split)).state
    assert locate.find_checkpoint(split).name == "latest.pth" and stopped["progress"]["step"] == stop_at
    assert main(["--resume", str(split), "--no_progress"]) == 0
    a, b = _final_state(tmp_path / "ck" / "straight"), _final_state(split)
    for key in ("G", "D", "optim_G", "optim_D", "rng"):
        _assert_same_tensors(a[key], b[key], key)
    assert a["progress"] == b["progress"] and a["model"]["name"] == model
    if model == "n2me_unet":
        assert "G/self_rec" in read_stats(tmp_path / "ck" / "straight" / "stats.jsonl")[-1]
    steps = [s["step"] for s in read_stats(split / "stats.jsonl")]
    assert steps == sorted(set(steps))  # no duplicated log lines after the resume


@pytest.mark.slow
def test_existing_run_folder_is_never_overwritten(tiny_data, tmp_path, capsys):
    assert train(tiny_data, tmp_path / "ck", "--name", "run", "--max_steps", "1") == 0
    before = (tmp_path / "ck" / "run" / "latest.pth").stat().st_mtime_ns
    assert train(tiny_data, tmp_path / "ck", "--name", "run") == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "ck" / "run" / "latest.pth").stat().st_mtime_ns == before


@pytest.mark.slow
def test_fine_tune_from_a_checkpoint_on_new_data(tiny_data, tmp_path):
    assert train(tiny_data, tmp_path / "ck", "--name", "base") == 0
    other = make_tiny_dataset(tmp_path / "me_data", n=9, seed=5, table="csv")
    base = tmp_path / "ck" / "base"
    # ULME-style transfer learning: load epoch 3, continue with epochs 4..5 on new data.
    assert main(["--data_root", str(other), "--ckpt_dir", str(base), "--load_epoch", "3", "--epoch_count", "4",
                 "--niter", "4", "--niter_decay", "1", "--name", "ft", "--batch_size", "4", "--gpu_ids", "-1",
                 "--no_progress", "--ngf", "99"]) == 0  # architecture flags are ignored: weights decide
    ft = tmp_path / "ck" / "ft"
    assert sorted(p.name for p in ft.glob("epoch_*.pth")) == ["epoch_0004.pth", "epoch_0005.pth"]
    assert read(ft / "epoch_0005.pth").state["model"]["generator"]["ngf"] == 8
    assert "fine-tuning from" in (ft / "log.txt").read_text()


@pytest.mark.slow
def test_checkpoint_of_another_architecture_is_refused_with_key_list(tiny_data, tmp_path, capsys):
    assert train(tiny_data, tmp_path / "ck", "--name", "a", "--max_steps", "1") == 0
    state = torch.load(tmp_path / "ck" / "a" / "latest.pth", weights_only=True)
    state["G"]["model.0.weight"] = torch.zeros(8, 5, 7, 7)
    del state["D"]["aus_top.weight"]
    torch.save(state, tmp_path / "ck" / "a" / "latest.pth")
    assert main(["--resume", str(tmp_path / "ck" / "a"), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "model.0.weight" in err and "shape mismatch" in err


def test_not_a_checkpoint_is_refused(tmp_path, tiny_data, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "epoch_0001.pth").write_bytes(b"not a checkpoint")
    assert main(["--data_root", str(tiny_data), "--ckpt_dir", str(tmp_path / "run"), "--load_epoch", "1",
                 "--gpu_ids", "-1"]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n=40)
    cmd = [sys.executable, "main.py", "--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "r",
           *TINY_MODEL, "--batch_size", "2", "--niter", "500", "--niter_decay", "0", "--print_losses_freq", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stats = tmp_path / "ck" / "r" / "stats.jsonl"
    deadline = time.time() + 120
    while not (stats.exists() and stats.stat().st_size > 0) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "stop requested" in out and "--resume" in out
    state = read(tmp_path / "ck" / "r" / "latest.pth").state
    assert state["progress"]["step"] > 0


@pytest.mark.slow
def test_n2me_layout_with_18_aus_amp_and_channels_last(tmp_path):
    # N2ME: aus.pkl with 18 values (mouth opening before AU45) and train_ids.txt / test_ids.txt.
    data = make_tiny_dataset(tmp_path / "n2me", n=10, n_aus=18, table="pkl")
    (data / "aus_openface.pkl").rename(data / "aus.pkl")
    (data / "train_ids.txt").write_text("".join(f"face{i:04d}\n" for i in range(8)))
    (data / "test_ids.txt").write_text("face0008\nface0009\n")
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "n", *TINY_MODEL,
                 "--aus_nc", "18", "--batch_size", "4", "--max_steps", "2", "--train_gen_iter", "1",
                 "--amp", "--channels_last"]) == 0
    state = read(tmp_path / "ck" / "n" / "latest.pth").state
    assert state["model"]["aus_schema"] == "n2me18" and state["model"]["generator"]["aus_nc"] == 18
    assert state["D"]["aus_top.weight"].shape[0] == 18
    assert not (tmp_path / "ck" / "n" / "train_ids.txt").exists()  # the user's lists were used, not a new split


@pytest.mark.slow
def test_one_step_at_256_px_with_random_crop(tmp_path):
    data = make_tiny_dataset(tmp_path / "big", n=3, size=300)
    assert main(["--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "big", "--gpu_ids", "-1",
                 "--final_size", "256", "--resize_or_crop", "resize_and_crop", "--ngf", "4", "--ndf", "4",
                 "--n_blocks", "1", "--batch_size", "2", "--max_steps", "1", "--train_gen_iter", "1",
                 "--no_progress"]) == 0
    state = read(tmp_path / "ck" / "big" / "latest.pth").state
    assert state["options"]["final_size"] == 256 and state["D"]["aus_top.weight"].shape[-1] == 4


@pytest.mark.slow
def test_a_few_steps_on_real_megc2021_frames(megc_root, tmp_path):
    # Grayscale SAMM and colour CASME II crops with their real OpenFace AU tables and ULME id lists.
    for folder in ("SAMM_Positive_westMale", "casme2_Surprise_asianFemale"):
        data = tmp_path / folder
        shutil.copytree(megc_root / folder, data, ignore=shutil.ignore_patterns("csvs*", "imgs2"))
        (data / "test_ids.csv").rename(data / "train_ids.csv")  # its frames become the training list
        assert main(["--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", folder,
                     "--final_size", "64", "--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--batch_size", "8",
                     "--gpu_ids", "-1", "--no_progress", "--max_steps", "3", "--train_gen_iter", "1",
                     "--print_losses_freq", "8", "--sample_img_freq", "16"]) == 0
        run = tmp_path / "ck" / folder
        stats = read_stats(run / "stats.jsonl")
        assert all(torch.isfinite(torch.tensor(s["D/total"])) for s in stats)
        assert list((run / "samples").glob("*.png"))


@pytest.mark.visdom
def test_training_run_reaches_visdom_and_tensorboard(tiny_data, tmp_path):
    """A real visdom server on localhost receives the run's loss curves and sample grids; TensorBoard too."""
    from helpers.visdom_server import read_window, running_visdom_server, visdom_unavailable_reason

    reason = visdom_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with running_visdom_server(tmp_path) as port:
        assert train(tiny_data, tmp_path / "ck", "--name", "viz", "--visdom_display_id", "1",
                     "--visdom_server", "http://127.0.0.1", "--visdom_port", str(port), "--visdom_env", "me_run",
                     "--tensorboard") == 0
        plot = read_window(port, "me_run", "losses_1")
        lines = {trace["name"]: trace for trace in plot["content"]["data"]}
        stats = read_stats(tmp_path / "ck" / "viz" / "stats.jsonl")
        d_total = [s["D/total"] for s in stats]
        visdom_key = next(k for k in lines if k.replace("_", "/") == "D/total" or k == "D/total")
        assert lines[visdom_key]["x"] == [s["step"] for s in stats]
        assert lines[visdom_key]["y"] == pytest.approx(d_total, rel=1e-5)
        image = read_window(port, "me_run", "samples_samples_1")
        assert image["content"]["src"].startswith("data:image/png;base64,")

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "ck" / "viz" / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars(events.Tags()["scalars"][0])]
    assert events.Tags()["images"]
