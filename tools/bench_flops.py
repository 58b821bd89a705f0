"""What the benchmark counts and compares against, apart from timing (``python -m tools.bench``): the FLOPs of
a training image and an inference frame, the device's peak FLOP/s (datasheet table on GPU, a measured matmul on
CPU), the model FLOPs utilisation those give, and the gradient bytes DDP would all-reduce per step."""
from __future__ import annotations

import math
import time
from argparse import Namespace
from typing import TYPE_CHECKING

import torch
from torch.utils.flop_counter import FlopCounterMode

from solvers.fast_path import FastPath

if TYPE_CHECKING:  # the bench's set-up; imported for annotations only, tools.bench imports this module
    from tools.bench import Bench


# Dense (no sparsity) datasheet peaks in TFLOP/s: bf16 tensor cores, and TF32, which cuDNN uses for fp32
# convolutions by default (torch.backends.cudnn.allow_tf32). Matched against torch.cuda.get_device_name.
GPU_PEAK_TFLOPS = {
    "H100 SXM": {"bf16": 989.4, "fp32": 494.7}, "H100 80GB HBM3": {"bf16": 989.4, "fp32": 494.7},
    "H100 PCIe": {"bf16": 756.0, "fp32": 378.0}, "H100 NVL": {"bf16": 835.0, "fp32": 417.5},
    "H200": {"bf16": 989.4, "fp32": 494.7}, "A100": {"bf16": 312.0, "fp32": 156.0},
    "L40S": {"bf16": 362.05, "fp32": 183.0}, "RTX 4090": {"bf16": 165.2, "fp32": 82.6},
}


class _GlobalOnly:
    """Stands in for FlopCounterMode's per-module tracker, whose backward hooks break ``autograd.grad`` (the
    gradient penalty): every count goes to the "Global" total, which is all the benchmark reads."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn) -> int:
    """FLOPs of the aten ops ``fn`` runs (matmuls and convolutions, forward and backward), counted by torch's
    own per-op formulas (``torch.utils.flop_counter``). tests/test_bench.py checks a known count."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return int(counter.get_total_flops())


def model_flops(bench: Bench) -> dict:
    """Per training image (a whole D/G cycle over its images) and per inference frame. Counted on the eager
    modules: compilation fuses kernels but does the same matmul/convolution work."""
    args = bench.args
    critic = count_flops(lambda: bench.step.critic(bench.batch, bench.gen, eager=True))
    generator = count_flops(lambda: bench.step.generator(bench.batch, eager=True))
    frames, aus = bench.images(args.infer_batch), bench.aus(args.infer_batch)
    infer = count_flops(lambda: bench.infer(frames, aus, eager=True))
    per_cycle = args.train_gen_iter * critic + generator
    return {
        "flops_per_critic_step": critic, "flops_per_generator_step": generator,
        "train_flops_per_image": per_cycle / (args.train_gen_iter * bench.batch_size),
        "infer_flops_per_frame": infer / args.infer_batch,
    }


def measured_cpu_peak_tflops(dtype: torch.dtype, size: int = 2048, reps: int = 7) -> float:
    """What a large matmul reaches on this CPU in ``dtype``: the ceiling dense conv/matmul work can approach.
    The fastest of ``reps`` single products: other load on the machine can only slow a product down."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e12


def peak_tflops(args: Namespace, path: FastPath, cache: dict) -> tuple[float | None, str]:
    precision = "bf16" if path.amp else "fp32"
    if args.peak_tflops is not None:
        return args.peak_tflops, "--peak_tflops"
    if args.device == "cuda":
        name = torch.cuda.get_device_name(torch.device("cuda"))
        for key, peaks in GPU_PEAK_TFLOPS.items():
            if key in name:
                label = "bf16 tensor core" if precision == "bf16" else "TF32 tensor core (cuDNN's fp32 default)"
                return peaks[precision], f"datasheet dense {label} peak of {key}"
        return None, f"unknown GPU {name!r}: pass --peak_tflops"
    if precision not in cache:
        cache[precision] = measured_cpu_peak_tflops(torch.bfloat16 if path.amp else torch.float32)
    return cache[precision], f"measured {precision} 2048x2048 matmul on this CPU"

def ddp_communication(bench: Bench, train_gen_iter: int) -> dict:
    """What DDP all-reduces per step: every critic step the critic's gradients, every ``train_gen_iter``-th step
    also the generator's, in fp32 whatever the autocast precision (gradients live in the parameters' dtype). A
    ring all-reduce sends (and receives) 2 (k - 1) / k of that per rank for k ranks, so per-rank traffic stays
    below twice the gradient size however many GPUs there are; scaling then depends on link bandwidth vs step time."""
    def grad_bytes(module: torch.nn.Module) -> int:
        return sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)

    d_bytes, g_bytes = grad_bytes(bench.D), grad_bytes(bench.G)
    per_step = d_bytes + g_bytes / train_gen_iter
    return {"critic_gradient_bytes": d_bytes, "generator_gradient_bytes": g_bytes,
            "mean_allreduce_bytes_per_step": per_step,
            "ring_bytes_sent_per_rank_per_step": {str(k): per_step * 2 * (k - 1) / k for k in (2, 4, 8)}}


def mfu(per_s: float | None, flops_each: float, peak_tflops_value: float | None) -> float | None:
    return None if peak_tflops_value is None or per_s is None else per_s * flops_each / (peak_tflops_value * 1e12)
