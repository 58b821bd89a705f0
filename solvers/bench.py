"""Throughput benchmark on synthetic tensors: training images/s, generator inference frames/s, peak memory.

    python -m solvers.bench [--device cpu|cuda] [--final_size 128] [--batch_size 25] [--amp] [--channels_last]
                            [--steps N] [--warmup W] [--threads T] [--json PATH]

Training steps are the trainer's own: ``critic_losses`` on every step, ``generator_losses`` on every
``train_gen_iter``-th step, Adam on both, the same bf16 autocast and channels_last handling. No data is read,
so the numbers are model compute only (no image decoding, loader or augmentation). One JSON object goes to
stdout (and to ``--json``); a one-line summary goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shlex
import statistics
import sys
import time
from argparse import Namespace
from pathlib import Path

import torch

from models.ganimation import LossWeights, critic_losses, generator_losses
from models.networks import NORMS, count_parameters, init_weights
from models.registry import MODELS, build_networks, conditioning
from openface.au_schema import SCHEMAS
from solvers import model_args_from_options
from solvers.trainer import OptimSettings

# Per-device defaults for flags left unset: CPU numbers keep the full 128 px model within a few minutes on two
# cores; GPU numbers are long enough for the clock to be well above launch and synchronisation noise.
DEFAULTS = {
    "cpu": {"steps": 10, "warmup": 2, "infer_iters": 3, "infer_warmup": 1},
    "cuda": {"steps": 100, "warmup": 10, "infer_iters": 50, "infer_warmup": 5},
}
MIB = 1024 * 1024


# ---------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> Namespace:
    p = argparse.ArgumentParser(prog="python -m solvers.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--batch_size", type=int, default=25)
    p.add_argument("--final_size", type=int, default=128, help="image side in pixels (128 or 256 usual)")
    p.add_argument("--steps", type=int, default=None,
                   help="measured training steps, rounded up to whole G/D cycles (default: 10 cpu, 100 cuda)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured training steps first (default: 2 cpu, 10 cuda)")
    p.add_argument("--train_gen_iter", type=int, default=OptimSettings.train_gen_iter,
                   help="one generator step every this many critic steps, as in training")
    p.add_argument("--amp", action="store_true", help="bf16 autocast, as the trainer's --amp")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--model", default="ganimation", choices=sorted(MODELS))
    p.add_argument("--aus_schema", default="openface17", choices=sorted(SCHEMAS))
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--n_blocks", type=int, default=6)
    p.add_argument("--norm", default="instance", choices=NORMS)
    p.add_argument("--d_layers", type=int, default=0, help="critic downsamplings (0: the training default)")
    p.add_argument("--infer_batch", type=int, default=64, help="frames per generator inference batch")
    p.add_argument("--infer_iters", type=int, default=None, help="measured inference batches (default: 3 cpu, 50 cuda)")
    p.add_argument("--infer_warmup", type=int, default=None,
                   help="unmeasured inference batches (default: 1 cpu, 5 cuda)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    _resolve_defaults(args, p)
    return args


def _resolve_defaults(args: Namespace, parser: argparse.ArgumentParser) -> None:
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("batch_size", "steps", "train_gen_iter", "infer_batch", "infer_iters"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be at least 1")
    for key in ("warmup", "infer_warmup"):
        if getattr(args, key) < 0:
            parser.error(f"--{key} must not be negative")
    # A measured window of whole cycles holds exactly steps / train_gen_iter generator steps, so the rate is the
    # one training sees on average; a partial cycle would over- or under-count the expensive G step.
    args.steps_requested = args.steps
    args.steps = math.ceil(args.steps / args.train_gen_iter) * args.train_gen_iter


def model_args(args: Namespace) -> dict:
    """The same constructor arguments (and validation) that training derives from its flags."""
    opt = Namespace(model=args.model, aus_schema=args.aus_schema, aus_nc=None, final_size=args.final_size,
                    ngf=args.ngf, ndf=args.ndf, n_blocks=args.n_blocks, norm=args.norm, d_layers=args.d_layers,
                    n_down=3, explicit=())
    return model_args_from_options(opt)


# ---------------------------------------------------------------- set-up
class Bench:
    """Networks, optimisers and one synthetic batch, set up the way ``Trainer._setup`` sets them up."""

    def __init__(self, args: Namespace):
        self.args = args
        self.device = torch.device(args.device)
        self.memory_format = torch.channels_last if args.channels_last else torch.preserve_format
        self.model_args = model_args(args)
        torch.manual_seed(args.seed)
        self.G, self.D = build_networks(self.model_args)
        self.condition = conditioning(self.model_args)
        init_weights(self.G)
        init_weights(self.D)
        self.G.to(self.device, memory_format=self.memory_format)
        self.D.to(self.device, memory_format=self.memory_format)
        optim = OptimSettings()
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=optim.lr, betas=optim.betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=optim.lr, betas=optim.betas)
        # The trainer's default weights for this model (N2ME's U-Net adds self-reconstruction).
        self.weights = LossWeights(self_rec=10.0 if self.model_args["name"] == "n2me_unet" else 0.0)
        self.gen = torch.Generator().manual_seed(args.seed + 1)  # CPU generator, as the trainer's
        self.aus_nc = self.model_args["generator"]["aus_nc"]
        self.batch = self.synthetic_batch(args.batch_size)

    def images(self, n: int) -> torch.Tensor:
        """Random pixels in [-1, 1]: the values do not change the work a convolution does."""
        size = self.args.final_size
        img = torch.rand(n, 3, size, size, generator=self.gen).mul_(2).sub_(1).to(self.device)
        return img.contiguous(memory_format=torch.channels_last) if self.args.channels_last else img

    def aus(self, n: int) -> torch.Tensor:
        return torch.rand(n, self.aus_nc, generator=self.gen).to(self.device)

    def synthetic_batch(self, n: int) -> dict:
        """The keys ``prepare_batch`` produces; target AUs are another random draw instead of a rolled batch."""
        src = self.images(n)
        return {"src_img": src, "src_aus": self.aus(n), "tar_img": src.roll(1, dims=0), "tar_aus": self.aus(n)}

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.args.amp)

    def sync(self) -> None:
        """CUDA runs asynchronously: the clock may only be read once the queued kernels are done."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---------------------------------------------------------------- the work being timed
    def train_step(self, with_generator: bool) -> None:
        """One ``Trainer._train_step``: a critic update, then a generator update when its turn has come."""
        alpha = torch.rand(self.args.batch_size, 1, 1, 1, generator=self.gen).to(self.device, non_blocking=True)
        with self.autocast():
            d_total, _ = critic_losses(self.G, self.D, self.batch, self.weights, alpha, self.condition)
        self.opt_D.zero_grad(set_to_none=True)
        d_total.backward()
        self.opt_D.step()
        if with_generator:
            self.D.requires_grad_(False)
            with self.autocast():
                g_total, _ = generator_losses(self.G, self.D, self.batch, self.weights, self.condition)
            self.opt_G.zero_grad(set_to_none=True)
            g_total.backward()
            self.opt_G.step()
            self.D.requires_grad_(True)

    def infer(self, frames: torch.Tensor, aus: torch.Tensor) -> None:
        with torch.inference_mode(), self.autocast():
            self.G(frames, aus)


# ---------------------------------------------------------------- measurements
def warm_up_training(bench: Bench, steps: int) -> None:
    """Unmeasured steps; the last one includes a G step so both code paths (and their allocations) are warm."""
    for i in range(steps):
        bench.train_step(with_generator=i == steps - 1)
    bench.sync()


def measure_training(bench: Bench) -> dict:
    """Whole cycles of ``train_gen_iter`` steps, G on the cycle's last step exactly as the trainer's counter does.

    The clock is read at cycle boundaries only: one synchronisation per cycle barely disturbs the GPU queue.
    """
    args = bench.args
    cycles = args.steps // args.train_gen_iter
    cycle_seconds = []
    for cycle in range(cycles):
        bench.sync()
        start = time.perf_counter()
        for step in range(args.train_gen_iter):
            bench.train_step(with_generator=(step + 1) % args.train_gen_iter == 0)
        bench.sync()
        cycle_seconds.append(time.perf_counter() - start)
        _note(f"train cycle {cycle + 1}/{cycles}: {cycle_seconds[-1]:.3f} s")
    total = sum(cycle_seconds)
    return {
        "train_images_per_s": args.steps * args.batch_size / total,
        "train_steps_per_s": args.steps / total,
        "train_seconds": total,
        "train_cycle_seconds_median": statistics.median(cycle_seconds),
        "train_cycle_seconds": cycle_seconds,
    }


def measure_inference(bench: Bench) -> dict:
    """G forward under inference_mode on ``infer_batch`` frames, in eval mode as a deployed generator runs."""
    args = bench.args
    frames, aus = bench.images(args.infer_batch), bench.aus(args.infer_batch)
    bench.G.eval()
    try:
        for _ in range(args.infer_warmup):
            bench.infer(frames, aus)
        bench.sync()
        start = time.perf_counter()
        for _ in range(args.infer_iters):
            bench.infer(frames, aus)
        bench.sync()
        seconds = time.perf_counter() - start
    finally:
        bench.G.train()
    return {"infer_frames_per_s": args.infer_iters * args.infer_batch / seconds, "infer_seconds": seconds}


# ---------------------------------------------------------------- memory and environment
def process_peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def reset_peak_memory(device: torch.device) -> None:
    # On CPU this is a no-op: ru_maxrss cannot be reset, each reading is the peak since start-up.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB
    return process_peak_rss_mib()


def memory_kind(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated (tensors only, excludes the CUDA context and allocator cache)"
    return "process peak RSS (getrusage ru_maxrss, since process start: includes Python and torch themselves)"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    return {
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "python_version": platform.python_version(),
    }


def settings(args: Namespace, model: dict) -> dict:
    optim = OptimSettings()
    return {
        "device": args.device, "batch_size": args.batch_size, "final_size": args.final_size,
        "steps": args.steps, "steps_requested": args.steps_requested, "warmup": args.warmup,
        "train_gen_iter": args.train_gen_iter, "amp": args.amp, "channels_last": args.channels_last,
        "infer_batch": args.infer_batch, "infer_iters": args.infer_iters, "infer_warmup": args.infer_warmup,
        "threads_requested": args.threads, "seed": args.seed, "lr": optim.lr, "betas": list(optim.betas),
        "model": model,
    }


# ---------------------------------------------------------------- reporting
def _note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def summary_line(result: dict) -> str:
    s = result["settings"]
    precision = "bf16" if s["amp"] else "fp32"
    layout = " channels_last" if s["channels_last"] else ""
    return (f"{result['device_name']} x{result['threads']} threads | {s['final_size']}px batch {s['batch_size']} "
            f"{precision}{layout} | train {result['train_images_per_s']:.2f} img/s | "
            f"infer {result['infer_frames_per_s']:.2f} frames/s (batch {s['infer_batch']}) | "
            f"peak {result['peak_memory_mib']:.0f} MiB | G {result['g_params'] / 1e6:.2f}M "
            f"D {result['d_params'] / 1e6:.2f}M params")


def run(args: Namespace) -> dict:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    baseline_mib = process_peak_rss_mib()
    bench = Bench(args)
    _note(f"{args.final_size}px batch {args.batch_size} on {device_name(device)}: {args.warmup} warm-up + "
          f"{args.steps} measured training steps")

    warm_up_training(bench, args.warmup)
    reset_peak_memory(device)
    train = measure_training(bench)
    train_peak = peak_memory_mib(device)

    reset_peak_memory(device)
    infer = measure_inference(bench)
    # The CPU peak RSS cannot be reset, so it has no inference-only reading: only the whole-run peak.
    infer_peak = peak_memory_mib(device) if device.type == "cuda" else None
    overall_peak = max(train_peak, infer_peak) if infer_peak is not None else peak_memory_mib(device)

    return {
        **train,
        **infer,
        "peak_memory_mib": overall_peak,
        "train_peak_memory_mib": train_peak,
        "infer_peak_memory_mib": infer_peak,
        "peak_memory_kind": memory_kind(device),
        "baseline_rss_mib": baseline_mib,
        "g_params": count_parameters(bench.G),
        "d_params": count_parameters(bench.D),
        **environment(device),
        "settings": settings(args, bench.model_args),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    result["command"] = shlex.join(["python", "-m", "solvers.bench", *(sys.argv[1:] if argv is None else argv)])
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    _note(summary_line(result))
    return result


if __name__ == "__main__":
    main()
