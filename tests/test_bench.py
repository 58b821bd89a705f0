"""The benchmark command runs end to end on a tiny model and reports sane numbers. Speed is never asserted."""
from __future__ import annotations

import json
import math

from solvers import bench

TINY = ["--final_size", "32", "--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--batch_size", "4", "--device", "cpu",
        "--infer_batch", "8", "--infer_iters", "2", "--infer_warmup", "1"]


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_bench_reports_positive_numbers_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench" / "result.json"
    result = bench.main([*TINY, "--steps", "5", "--warmup", "1", "--json", str(out)])

    for key in ("train_images_per_s", "train_steps_per_s", "infer_frames_per_s", "peak_memory_mib",
                "train_peak_memory_mib", "g_params", "d_params", "threads"):
        assert _positive_finite(result[key]), (key, result[key])
    assert "RSS" in result["peak_memory_kind"]
    assert result["device_name"] and result["torch_version"]

    settings = result["settings"]
    assert (settings["final_size"], settings["batch_size"], settings["steps"], settings["warmup"]) == (32, 4, 5, 1)
    assert settings["model"]["generator"]["ngf"] == 8
    assert len(result["train_cycle_seconds"]) == 1  # 5 steps at train_gen_iter 5: one whole cycle

    assert json.loads(out.read_text()) == result
    printed = capsys.readouterr().out
    assert json.loads(printed) == result  # stdout carries exactly the JSON object


def test_steps_round_up_to_whole_generator_cycles():
    args = bench.parse_args([*TINY, "--steps", "7", "--train_gen_iter", "3"])
    assert (args.steps_requested, args.steps) == (7, 9)
    assert bench.parse_args([*TINY, "--steps", "6", "--train_gen_iter", "3"]).steps == 6


def test_cpu_defaults_apply_when_flags_are_left_out():
    args = bench.parse_args(["--device", "cpu"])
    assert (args.steps, args.warmup, args.batch_size, args.final_size, args.infer_batch) == (10, 2, 25, 128, 64)
