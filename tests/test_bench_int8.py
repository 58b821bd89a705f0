"""tools.bench_int8 on a tiny random generator: the int8 graph is really quantised, its frames stay near fp32's on
the calibration faces, and every figure the benchmark reports is there. Speed itself is not tested."""
from __future__ import annotations

import pytest
import torch

from checkpoints import native as ckpt
from helpers import TINY_MODEL
from models.model_registry import build_generator
from options import build_parser
from solvers.composition import model_args_from_options
from tools import bench_int8

pytestmark = pytest.mark.onnx  # exports with torch.onnx and quantises with onnxruntime


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    args = model_args_from_options(build_parser().parse_args([*TINY_MODEL, "--model", "ganimation"]))
    torch.manual_seed(0)
    g = build_generator(args)
    run = tmp_path_factory.mktemp("int8") / "run"
    run.mkdir()
    ckpt.save_atomic({"kind": ckpt.KIND, "format_version": ckpt.FORMAT_VERSION,
                      "progress": {"epoch": 1, "batch": 0, "step": 0, "images": 0}, "model": args,
                      "G": g.state_dict()}, ckpt.epoch_path(run, 1))
    return run


def test_int8_graph_is_quantised_and_close_to_fp32(tiny_checkpoint):
    result = bench_int8.measure(tiny_checkpoint, batch=4, runs=1, reps=1, threads=1)
    assert result["quantize_linear_ops"] > 0
    assert set(result["best_frames_per_s"]) == {"torch_fp32", "ort_fp32", "ort_int8"}
    assert all(v > 0 for v in result["best_frames_per_s"].values())
    # uint8 activations and int8 weights on a freshly initialised network: a few levels on average
    assert result["int8_vs_fp32_frames_levels"]["mean"] < 8
