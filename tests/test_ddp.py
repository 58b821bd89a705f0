"""Two CPU ranks (gloo) launched by torchrun, exactly as users launch multi-GPU training."""
import os
import subprocess
import sys

import pytest
import torch

from checkpoints import read
from helpers import ROOT, TINY_MODEL, make_tiny_dataset
from solvers.fast_path import compiler_problem


# "on": the fast path as multi-GPU users get it by default (on CPU: torch.compile of G and D, fused Adam).
@pytest.mark.ddp
@pytest.mark.parametrize("fast_path", ["off", "on"])
def test_two_gloo_ranks_keep_identical_weights(tmp_path, fast_path):
    if fast_path == "on" and compiler_problem(torch.device("cpu")) is not None:
        pytest.skip("torch.compile does not work on this machine (no C++ compiler?)")
    data = make_tiny_dataset(tmp_path / "d", n=20)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "main.py",
           "--data_root", str(data), "--ckpt_dir", str(tmp_path / "ck"), "--name", "ddp", *TINY_MODEL,
           "--batch_size", "3", "--niter", "2", "--niter_decay", "0", "--train_gen_iter", "2",
           "--print_losses_freq", "6", "--fast_path", fast_path]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "ck" / "ddp"
    log = (run / "log.txt").read_text()
    # 19 training images, 3 per rank x 2 ranks: 3 steps per epoch, 6 steps in all; every save compares the
    # SHA-1 of all G and D tensors across ranks and fails the run if they differ.
    assert "world size 2" in log
    assert log.count("DDP: weights identical on all 2 ranks") == 2
    state = read(run / "epoch_0002.pth").state
    assert state["progress"]["step"] == 6 and state["progress"]["images"] == 36
    assert len(state["rng"]["batch_generators"]) == 2  # each rank's augmentation stream, for resume
    assert all(torch.isfinite(t).all() for t in state["G"].values())
