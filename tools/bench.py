"""Throughput benchmark on synthetic tensors: plain and fast path side by side, one or more image sizes.

    python -m tools.bench [--device cpu|cuda] [--final_size 128 256] [--paths plain,fast]
                          [--batch_size 25 50 100] [--compile_mode reduce-overhead] [--steps N]
                          [--warmup W] [--threads T] [--peak_tflops P] [--json PATH]

Per (path, size, batch size): training images/s, generator inference frames/s, peak memory, the FLOPs of a
training image and of an inference frame (counted by ``torch.utils.flop_counter`` on the real ops, backward and
the gradient penalty's double backward included) and the model FLOPs utilisation (MFU): achieved FLOP/s over
the device's peak. The peak is the datasheet's dense figure for known GPUs in the path's precision
(``--peak_tflops`` overrides it); on CPU it is measured (a large matmul in the path's precision), so CPU MFU is
a fraction of what this CPU's matmul reaches.

Training steps are the trainer's own code (``solvers/train_step.py``): a critic update on every step, a generator
update on every ``train_gen_iter``-th step, with the path's settings (``solvers/fast_path.py``): "plain" is fp32
eager; "fast" is what ``--fast_path on`` gives on this device (``--compile_mode reduce-overhead`` adds CUDA
graphs). No data is read, so the numbers are model compute only (``--loader`` measures the data path alone).
On CUDA each record also counts the host synchronisations of one D/G cycle. ``--int8`` adds the bundled generator in
static INT8 through ONNX Runtime against fp32 (``tools/bench_int8.py``). One JSON object goes to stdout (and
to ``--json``); a table goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
import warnings
from argparse import Namespace
from dataclasses import asdict
from pathlib import Path

import torch

from catalog.au_schema import SCHEMAS
from checkpoints import BUNDLED_CHECKPOINT
from models.model_registry import MODELS, build_networks, conditioning
from models.networks import NORMS, count_parameters, init_weights
from options import build_parser
from solvers import fast_path
from solvers.composition import loss_weights, model_args_from_options
from solvers.fast_path import FastPath
from solvers.train_settings import OptimSettings
from solvers.train_step import TrainStep
from tools.bench_flops import ddp_communication, mfu, model_flops, peak_tflops
from tools.bench_report import (
    bench_table,
    environment,
    memory_kind,
    note,
    peak_memory_mib,
    process_peak_rss_mib,
    reset_peak_memory,
    settings,
    speedups,
)

# Per-device defaults for flags left unset: CPU numbers keep the full 128 px model within a few minutes on two
# cores; GPU numbers are long enough for the clock to be well above launch and synchronisation noise.
DEFAULTS = {
    "cpu": {"steps": 10, "warmup": 2, "infer_iters": 3, "infer_warmup": 1},
    "cuda": {"steps": 100, "warmup": 10, "infer_iters": 50, "infer_warmup": 5},
}
PATHS = ("plain", "fast", "bf16")  # bf16: the plain path plus bf16 autocast and channels_last, eager


# ---------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--paths", default="plain,fast",
                   help="comma list of plain (fp32 eager), fast (--fast_path on for this device) and bf16 (eager "
                        "with bf16 autocast and channels_last: what the CUDA fast path adds besides compilation)")
    p.add_argument("--compile", default="auto", choices=fast_path.CHOICES,
                   help="torch.compile on the fast path: auto (on), or on/off to force it")
    p.add_argument("--batch_size", type=int, nargs="+", default=[25],
                   help="images per training step: each batch size is measured on every path and size")
    p.add_argument("--compile_mode", default="default", choices=("default", "reduce-overhead", "max-autotune"),
                   help="torch.compile mode of the fast path's training step (reduce-overhead: CUDA graphs)")
    p.add_argument("--final_size", type=int, nargs="+", default=[128],
                   help="image side(s) in pixels: each size is measured on every path")
    p.add_argument("--steps", type=int, default=None,
                   help="measured training steps, rounded up to whole G/D cycles (default: 10 cpu, 100 cuda)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured training steps first (default: 2 cpu, 10 cuda)")
    p.add_argument("--train_gen_iter", type=int, default=OptimSettings.train_gen_iter,
                   help="one generator step every this many critic steps, as in training")
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
    p.add_argument("--peak_tflops", type=float, default=None,
                   help="the device's peak TFLOP/s for MFU (default: datasheet table on GPU, measured on CPU)")
    p.add_argument("--loader", type=Path, default=None,
                   help="also measure the training data path alone (decode cache, sampler, augmentation) on this "
                        "data root, in images/s")
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--int8", action="store_true",
                   help="also time the bundled generator in static INT8 through ONNX Runtime against fp32 (CPU; "
                        "tools/bench_int8.py, which takes a checkpoint and calibration faces on its own)")
    args = p.parse_args(argv)
    _resolve_defaults(args, p)
    return args


def _resolve_defaults(args: Namespace, parser: argparse.ArgumentParser) -> None:
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not args.paths or any(p not in PATHS for p in args.paths):
        parser.error(f"--paths takes a comma list of {', '.join(PATHS)}")
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("steps", "train_gen_iter", "infer_batch", "infer_iters"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be at least 1")
    if min(args.batch_size) < 1:
        parser.error("--batch_size must be at least 1")
    for key in ("warmup", "infer_warmup"):
        if getattr(args, key) < 0:
            parser.error(f"--{key} must not be negative")
    # A measured window of whole cycles holds exactly steps / train_gen_iter generator steps, so the rate is the
    # one training sees on average; a partial cycle would over- or under-count the expensive G step.
    args.steps_requested = args.steps
    args.steps = math.ceil(args.steps / args.train_gen_iter) * args.train_gen_iter


def path_settings(name: str, args: Namespace) -> FastPath:
    if name == "plain":
        return fast_path.PLAIN
    if name == "bf16":
        return FastPath(amp=True, channels_last=True)
    return fast_path.resolve("on", torch.device(args.device), compile_mode=args.compile)


def training_options(args: Namespace, final_size: int) -> Namespace:
    """The training command line's options for this model, parsed by the training parser itself: every flag
    the bench does not set keeps training's default."""
    argv = ["--model", args.model, "--aus_schema", args.aus_schema, "--final_size", str(final_size),
            "--ngf", str(args.ngf), "--ndf", str(args.ndf), "--n_blocks", str(args.n_blocks), "--norm", args.norm,
            "--d_layers", str(args.d_layers)]
    opt = build_parser().parse_args(argv)
    opt.explicit = ()
    return opt


def model_args(args: Namespace, final_size: int) -> dict:
    """The same constructor arguments (and validation) that training derives from its flags."""
    return model_args_from_options(training_options(args, final_size))


# ---------------------------------------------------------------- set-up
class Bench:
    """Networks, optimisers and one synthetic batch, set up the way ``Trainer._setup`` sets them up, and the
    trainer's step (``TrainStep``) to run on them."""

    def __init__(self, args: Namespace, path: FastPath, final_size: int, batch_size: int):
        self.args, self.path, self.final_size, self.batch_size = args, path, final_size, batch_size
        self.device = torch.device(args.device)
        options = training_options(args, final_size)
        self.model_args = model_args_from_options(options)
        torch.manual_seed(args.seed)
        self.G, self.D = build_networks(self.model_args)
        self.condition = conditioning(self.model_args)
        init_weights(self.G)
        init_weights(self.D)
        fmt = torch.channels_last if path.channels_last else torch.preserve_format
        self.G.to(self.device, memory_format=fmt)
        self.D.to(self.device, memory_format=fmt)
        optim = OptimSettings()
        self.opt_G = fast_path.adam(self.G.parameters(), optim.lr, optim.betas, path)
        self.opt_D = fast_path.adam(self.D.parameters(), optim.lr, optim.betas, path)
        fast_path.apply_backend_settings(path)
        # The trainer's default loss weights for this model (N2ME's U-Net adds self-reconstruction).
        self.step = TrainStep(self.G, self.D, self.opt_G, self.opt_D, path=path, device=self.device,
                              weights=loss_weights(options, self.model_args["name"]),
                              condition=conditioning(self.model_args), compile_mode=args.compile_mode)
        self.G_infer = fast_path.maybe_compile(self.G, path, self.device, inference=True)
        # On the training device, as the trainer's generator with the device data path.
        self.gen = torch.Generator(device=self.device).manual_seed(args.seed + 1)
        self.aus_nc = self.model_args["generator"]["aus_nc"]
        self.batch = self.synthetic_batch(batch_size)

    def images(self, n: int) -> torch.Tensor:
        """Random pixels in [-1, 1]: the values do not change the work a convolution does."""
        size = self.final_size
        img = torch.rand(n, 3, size, size, generator=self.gen, device=self.device).mul_(2).sub_(1)
        return img.contiguous(memory_format=torch.channels_last) if self.path.channels_last else img

    def aus(self, n: int) -> torch.Tensor:
        return torch.rand(n, self.aus_nc, generator=self.gen, device=self.device)

    def synthetic_batch(self, n: int) -> dict:
        """The keys ``prepare_batch`` produces; target AUs are another random draw instead of a rolled batch."""
        src = self.images(n)
        return {"src_img": src, "src_aus": self.aus(n), "tar_img": src.roll(1, dims=0), "tar_aus": self.aus(n)}

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.path.amp)

    def sync(self) -> None:
        """CUDA runs asynchronously: the clock may only be read once the queued kernels are done."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---------------------------------------------------------------- the work being timed
    def train_step(self, with_generator: bool) -> None:
        """One ``Trainer._train_step``: a critic update, then a generator update when its turn has come."""
        self.step.critic(self.batch, self.gen)
        if with_generator:
            self.step.generator(self.batch)

    def infer(self, frames: torch.Tensor, aus: torch.Tensor, eager: bool = False) -> None:
        with torch.inference_mode(), self.autocast():
            (self.G if eager else self.G_infer)(frames, aus)


# ---------------------------------------------------------------- measurements
def warm_up_training(bench: Bench, steps: int) -> None:
    """Unmeasured steps; the last one includes a G step so both code paths (and their allocations, and on the
    fast path their compiled graphs) are warm."""
    steps = max(steps, 1) if bench.path.compile else steps  # compilation must not fall in the measured window
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
        note(f"train cycle {cycle + 1}/{cycles}: {cycle_seconds[-1]:.3f} s")
    total = sum(cycle_seconds)
    return {
        "train_images_per_s": args.steps * bench.batch_size / total,
        "train_steps_per_s": args.steps / total,
        "train_seconds": total,
        "train_cycle_seconds_median": statistics.median(cycle_seconds),
        "train_cycle_seconds": cycle_seconds,
    }


def count_host_syncs(bench: Bench) -> dict:
    """Synchronising CUDA calls (``torch.cuda.set_sync_debug_mode``) in one warm D/G cycle: each one makes the
    host wait for the GPU queue to drain. None on CPU, where nothing is asynchronous."""
    if bench.device.type != "cuda":
        return {"train_host_syncs_per_cycle": None, "train_host_sync_examples": []}
    cycle = bench.args.train_gen_iter
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for step in range(cycle):
                bench.train_step(with_generator=step == cycle - 1)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # where each one was called from (the Python line that triggered it)
    syncs = [f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]
    return {"train_host_syncs_per_cycle": len(syncs), "train_host_sync_examples": sorted(set(syncs))[:5]}


def measure_inference(bench: Bench) -> dict:
    """G forward under inference_mode on ``infer_batch`` frames, in eval mode as a deployed generator runs."""
    args = bench.args
    frames, aus = bench.images(args.infer_batch), bench.aus(args.infer_batch)
    bench.G.eval()
    try:
        for _ in range(max(args.infer_warmup, 1) if bench.path.compile else args.infer_warmup):
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


def measure_loader(args: Namespace, final_size: int) -> dict:
    """The trainer's data path alone: cached decode, epoch sampler, DataLoader, transfer and augmentation."""
    from data.augment import prepare_batch
    from data.dataset import build_training_set, collate_batch
    from data.sampler import EpochBatchSampler

    schema = SCHEMAS[args.aus_schema]
    started = time.perf_counter()
    dataset, _ = build_training_set(args.loader, schema, load_size=final_size, workers=args.threads or 2)
    setup = time.perf_counter() - started
    device, gen = torch.device(args.device), torch.Generator().manual_seed(args.seed)
    sampler = EpochBatchSampler(len(dataset), args.batch_size[0], seed=args.seed, epoch=1, shuffle=True)
    workers = 0 if dataset.pixels is not None else 2
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                         collate_fn=collate_batch, pin_memory=device.type == "cuda")
    images, start = 0, time.perf_counter()
    for batch_images, aus, _ in loader:
        batch = prepare_batch(batch_images.to(device, non_blocking=True), aus.to(device, non_blocking=True),
                              final_size=final_size, crop=False, flip=True, aus_noise=0.1, generator=gen)
        images += batch["src_img"].shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {"loader_images_per_s": images / seconds, "loader_images": images, "loader_setup_seconds": setup,
            "loader_cached_in_ram": dataset.pixels is not None}


def run_one(args: Namespace, name: str, final_size: int, batch_size: int, peaks: dict) -> tuple[dict, Bench]:
    """One path at one size and batch size. Inference does not depend on the training batch size: it is
    measured with the first ``--batch_size`` only (None in the other records), which spares its compilation."""
    device = torch.device(args.device)
    path = path_settings(name, args)
    bench = Bench(args, path, final_size, batch_size)
    note(f"{name} path ({path.describe()}), {final_size}px batch {batch_size}: {args.warmup} warm-up + "
          f"{args.steps} measured training steps")
    warm_up_training(bench, args.warmup)
    reset_peak_memory(device)
    train = measure_training(bench)
    train_peak = peak_memory_mib(device)
    syncs = count_host_syncs(bench)
    reset_peak_memory(device)
    with_inference = batch_size == args.batch_size[0]
    infer = measure_inference(bench) if with_inference else {"infer_frames_per_s": None, "infer_seconds": None}
    # The CPU peak RSS cannot be reset, so it has no inference-only reading: only the whole-run peak.
    infer_peak = peak_memory_mib(device) if device.type == "cuda" and with_inference else None
    overall_peak = max(train_peak, infer_peak) if infer_peak is not None else peak_memory_mib(device)
    flops = model_flops(bench)
    peak, source = peak_tflops(args, path, peaks)
    infer_tflops = None if not with_inference else infer["infer_frames_per_s"] * flops["infer_flops_per_frame"] / 1e12
    return {
        "path": name, "final_size": final_size, "batch_size": batch_size, "settings": asdict(path),
        "settings_text": path.describe(), **train, **syncs, **infer, **flops,
        "achieved_train_tflops": train["train_images_per_s"] * flops["train_flops_per_image"] / 1e12,
        "achieved_infer_tflops": infer_tflops,
        "peak_tflops": peak, "peak_tflops_source": source,
        "train_mfu": mfu(train["train_images_per_s"], flops["train_flops_per_image"], peak),
        "infer_mfu": mfu(infer["infer_frames_per_s"], flops["infer_flops_per_frame"], peak),
        "peak_memory_mib": overall_peak, "train_peak_memory_mib": train_peak, "infer_peak_memory_mib": infer_peak,
        "model": bench.model_args,
    }, bench


def run(args: Namespace) -> dict:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    baseline_mib = process_peak_rss_mib()
    runs, peaks, bench = [], {}, None
    for size in args.final_size:
        for batch_size in args.batch_size:
            for name in args.paths:
                record, bench = run_one(args, name, size, batch_size, peaks)
                runs.append(record)
    return {
        "runs": runs, "speedups": speedups(runs), "loader": loader_runs(args),
        "ddp_communication": ddp_communication(bench, args.train_gen_iter),
        "peak_memory_kind": memory_kind(device), "baseline_rss_mib": baseline_mib,
        "g_params": count_parameters(bench.G), "d_params": count_parameters(bench.D),
        "environment": environment(device), "settings": settings(args),
    }


def loader_runs(args: Namespace) -> list[dict]:
    return [{"final_size": size, **measure_loader(args, size)} for size in args.final_size] if args.loader else []


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    if args.int8:
        from tools import bench_int8

        result["int8"] = bench_int8.measure(BUNDLED_CHECKPOINT, threads=args.threads)
    result["command"] = shlex.join(["python", "-m", "tools.bench", *(sys.argv[1:] if argv is None else argv)])
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    note("\n" + bench_table(result))
    return result


if __name__ == "__main__":
    main()
