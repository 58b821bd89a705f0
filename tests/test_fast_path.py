"""The fast path computes what the plain path computes.

On CPU, with bf16 left out (it changes the numbers by design), the fast-path code (torch.compile of G and D,
channels_last, fused Adam, the eager gradient-penalty critic beside the compiled one) must give the plain fp32
path's losses and weights within float tolerance over several steps of real training. bf16 itself is checked
for training at all (finite, falling AU loss), since its numbers differ by design. Speed is never asserted.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from checkpoints import read
from helpers import TINY_MODEL
from main import main
from monitor.logs import read_stats
from solvers import composition, fast_path
from solvers.fast_path import FastPath

# 11 training images in batches of 4: 2 steps per epoch; losses logged at every step.
SCHEDULE = ["--batch_size", "4", "--niter", "2", "--niter_decay", "0", "--train_gen_iter", "2",
            "--print_losses_freq", "4", "--sample_img_freq", "0", "--no_flip"]
FAST_FP32 = FastPath(channels_last=True, compile=True, fused_adam=True)


def train(data, ckpt_dir, name, *extra):
    return main(["--mode", "train", "--data_root", str(data), "--ckpt_dir", str(ckpt_dir), "--name", name,
                 *TINY_MODEL, *SCHEDULE, *extra])


def test_resolve_defaults_by_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert fast_path.resolve("auto", cpu) == fast_path.PLAIN  # CPU: the plain path is the reference
    on_gpu = fast_path.resolve("auto", cuda)
    assert on_gpu.amp and on_gpu.channels_last and on_gpu.compile and on_gpu.fused_adam and on_gpu.cudnn_benchmark
    assert not fast_path.resolve("auto", cuda, compile_mode="off").compile
    assert fast_path.resolve("off", cuda, amp=True) == FastPath(amp=True)
    assert fast_path.resolve("off", cpu, compile_mode="on") == FastPath(compile=True)
    # on CPU the fast path is compilation in fp32 (bf16 and channels_last measured slower there)
    assert fast_path.resolve("on", cpu) == FastPath(compile=True, fused_adam=True)
    with pytest.raises(ValueError, match="fast_path"):
        fast_path.resolve("fast", cpu)


@pytest.mark.skipif(fast_path.compiler_problem(torch.device("cpu")) is not None,
                    reason="torch.compile does not work on this machine (no C++ compiler?)")
@pytest.mark.numeric
@pytest.mark.compile
def test_fast_path_code_matches_the_plain_path_in_fp32(tiny_data, tmp_path, monkeypatch):
    assert train(tiny_data, tmp_path, "plain", "--fast_path", "off") == 0
    monkeypatch.setattr(fast_path, "resolve", lambda *args, **kwargs: FAST_FP32)
    assert train(tiny_data, tmp_path, "fast", "--fast_path", "on") == 0
    plain, fast = (read_stats(tmp_path / name / "stats.jsonl") for name in ("plain", "fast"))
    assert [s["step"] for s in plain] == [s["step"] for s in fast] == [1, 2, 3, 4]
    for a, b in zip(plain, fast):
        for key in ("D/total", "D/gp", "D/aus", "D/real", "D/fake"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), (a["step"], key)
        if "G/total" in a:
            for key in ("G/total", "G/aus", "G/rec", "G/adv"):
                assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), (a["step"], key)
    a_state, b_state = (read(tmp_path / name / "epoch_0002.pth").state for name in ("plain", "fast"))
    # Adam divides each gradient by its own running size: a weight whose gradient is ~0 moves by up to lr either
    # way on float noise alone. So weights may differ by at most 2 * lr per update, and only in a few of them.
    lr, updates = 1e-4, {"D": 4, "G": 2}
    for net in ("G", "D"):
        diffs = torch.cat([(b_state[net][k].float() - v.float()).abs().flatten() for k, v in a_state[net].items()
                           if v.is_floating_point()])
        assert diffs.max() <= 2 * lr * updates[net], net
        assert (diffs > 1e-5).float().mean() < 0.01, net
    # the optimiser state has the same keys either way: a fused run resumes on the plain path and back
    assert a_state["optim_D"]["state"].keys() == b_state["optim_D"]["state"].keys()


@pytest.mark.slow
def test_bf16_fast_path_trains(tiny_data, tmp_path, monkeypatch):
    """--fast_path on for CPU: bf16 autocast included (compilation left out to keep the test quick)."""
    monkeypatch.setattr(fast_path, "resolve", lambda *args, **kwargs: FastPath(amp=True, channels_last=True,
                                                                                 fused_adam=True))
    assert train(tiny_data, tmp_path, "bf16", "--fast_path", "on") == 0
    stats = read_stats(tmp_path / "bf16" / "stats.jsonl")
    assert all(torch.isfinite(torch.tensor(s["D/total"])) for s in stats)
    assert read(tmp_path / "bf16" / "epoch_0002.pth").state["progress"]["step"] == 4


def test_compiler_failure_falls_back_to_eager(monkeypatch, caplog):
    module = torch.nn.Linear(2, 2)
    monkeypatch.setattr(fast_path, "compiler_problem", lambda device: "CalledProcessError: no C++ compiler")
    assert fast_path.maybe_compile(module, FastPath(compile=True), torch.device("cpu")) is module
    assert "running eagerly" in caplog.text
    assert fast_path.maybe_compile(module, fast_path.PLAIN, torch.device("cpu")) is module


def test_fast_path_flags_are_per_invocation():
    # a run started on a GPU (fast path) can be resumed on a CPU (plain path) and vice versa
    assert {"fast_path", "compile"} <= composition.PER_INVOCATION


@pytest.mark.skipif(fast_path.compiler_problem(torch.device("cpu")) is not None,
                    reason="torch.compile does not work on this machine (no C++ compiler?)")
@pytest.mark.numeric
@pytest.mark.compile
def test_compiled_inference_gives_the_plain_frames(tiny_data, tmp_path):
    """Test mode's fast path (compiled generator with frozen weights; a short last batch padded to the compiled
    shape and cut back) writes the frames the plain path writes, within a grey level."""
    from solvers.tester import SequenceGenerator

    assert train(tiny_data, tmp_path, "g", "--fast_path", "off", "--niter", "1") == 0
    ckpt_file = tmp_path / "g" / "epoch_0001.pth"
    template = torch.rand(3, 32, 32) * 2 - 1
    targets = np.linspace(0, 5, 7 * 17).reshape(7, 17)  # 7 frames in batches of 4: the last batch is short
    plain = SequenceGenerator(ckpt_file, torch.device("cpu"), batch_size=4).generate(template, targets)
    fast = SequenceGenerator(ckpt_file, torch.device("cpu"), batch_size=4,
                             speed=fast_path.resolve("on", torch.device("cpu"))).generate(template, targets)
    assert fast.shape == plain.shape == (7, 32, 32, 3)
    assert np.abs(fast.astype(int) - plain.astype(int)).max() <= 1
