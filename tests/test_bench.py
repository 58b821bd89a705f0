"""The benchmark command runs end to end on a tiny model and reports sane numbers. Speed is never asserted."""
from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import make_tiny_dataset
from solvers.fast_path import FastPath
from tools import bench

TINY = ["--final_size", "32", "--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--batch_size", "4", "--device", "cpu",
        "--infer_batch", "8", "--infer_iters", "2", "--infer_warmup", "1"]


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_reports_positive_numbers_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench" / "result.json"
    # the fast path without compilation: compiling would only make the test slower, not check more here
    result = bench.main([*TINY, "--steps", "5", "--warmup", "1", "--compile", "off", "--json", str(out)])

    assert [(r["path"], r["final_size"]) for r in result["runs"]] == [("plain", 32), ("fast", 32)]
    for run in result["runs"]:
        for key in ("train_images_per_s", "train_steps_per_s", "infer_frames_per_s", "peak_memory_mib",
                    "train_peak_memory_mib", "train_flops_per_image", "infer_flops_per_frame", "peak_tflops",
                    "train_mfu", "infer_mfu"):
            assert _positive_finite(run[key]), (run["path"], key, run[key])
        assert len(run["train_cycle_seconds"]) == 1  # 5 steps at train_gen_iter 5: one whole cycle
        assert run["model"]["generator"]["ngf"] == 8
        # a training image costs more than an inference frame: backward, the critic, the penalty
        assert run["train_flops_per_image"] > 2 * run["infer_flops_per_frame"]
    plain, fast = result["runs"]
    assert plain["settings_text"] == "plain fp32 eager" and fast["settings"]["fused_adam"]
    assert plain["train_flops_per_image"] == fast["train_flops_per_image"]  # the same work on either path
    assert set(result["speedups"]["32px batch 4"]) == {"train", "infer"}
    comm = result["ddp_communication"]
    assert comm["critic_gradient_bytes"] == 4 * result["d_params"]  # fp32 gradients of every critic weight
    assert comm["mean_allreduce_bytes_per_step"] == 4 * result["d_params"] + 4 * result["g_params"] / 5
    assert "RSS" in result["peak_memory_kind"] and result["environment"]["torch_version"]
    assert _positive_finite(result["g_params"]) and _positive_finite(result["d_params"])
    settings = result["settings"]
    assert (settings["final_sizes"], settings["batch_sizes"], settings["steps"]) == ([32], [4], 5)
    assert settings["warmup"] == 1

    assert json.loads(out.read_text()) == result
    captured = capsys.readouterr()
    assert json.loads(captured.out) == result  # stdout carries exactly the JSON object
    assert "fast / plain at 32px batch 4" in captured.err


@pytest.mark.slow
def test_every_batch_size_is_measured_and_inference_once(tmp_path):
    tiny = [a for a in TINY if a not in ("--batch_size", "4")]
    result = bench.main([*tiny, "--batch_size", "2", "4", "--paths", "plain", "--steps", "5", "--warmup", "0"])
    runs = result["runs"]
    assert [(r["path"], r["batch_size"]) for r in runs] == [("plain", 2), ("plain", 4)]
    assert all(_positive_finite(r["train_images_per_s"]) for r in runs)
    # the same model: FLOPs per image do not depend on the batch size (within float rounding of the division)
    assert runs[0]["train_flops_per_image"] == pytest.approx(runs[1]["train_flops_per_image"], rel=1e-9)
    assert _positive_finite(runs[0]["infer_frames_per_s"]) and runs[1]["infer_frames_per_s"] is None
    assert result["settings"]["batch_sizes"] == [2, 4]


def test_flops_are_counted_including_backward_and_double_backward():
    layer = torch.nn.Linear(10, 20, bias=False)
    x = torch.randn(4, 10, requires_grad=True)
    assert bench.count_flops(lambda: layer(x)) == 2 * 4 * 10 * 20
    assert bench.count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 4 * 10 * 20  # + grad input, weight

    def penalty():  # autograd.grad with create_graph, as the WGAN-GP term: must not break the counter
        (grad,) = torch.autograd.grad(layer(x).pow(2).sum(), x, create_graph=True)
        grad.sum().backward()

    assert bench.count_flops(penalty) > 3 * 2 * 4 * 10 * 20


@pytest.mark.slow
def test_loader_is_measured_alone(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n=20, size=40)
    result = bench.main([*TINY, "--steps", "5", "--warmup", "0", "--paths", "plain", "--loader", str(data)])
    (loader,) = result["loader"]
    assert loader["final_size"] == 32 and loader["loader_images"] == 16  # 19 training images, whole batches of 4
    assert _positive_finite(loader["loader_images_per_s"])


def test_steps_round_up_to_whole_generator_cycles():
    args = bench.parse_args([*TINY, "--steps", "7", "--train_gen_iter", "3"])
    assert (args.steps_requested, args.steps) == (7, 9)
    assert bench.parse_args([*TINY, "--steps", "6", "--train_gen_iter", "3"]).steps == 6


def test_cpu_defaults_apply_when_flags_are_left_out():
    args = bench.parse_args(["--device", "cpu"])
    assert (args.steps, args.warmup, args.batch_size, args.final_size, args.infer_batch) == (10, 2, [25], [128], 64)
    assert args.paths == ["plain", "fast"]
    assert bench.path_settings("bf16", args) == FastPath(amp=True, channels_last=True)
