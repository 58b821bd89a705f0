"""What the benchmark reports besides its measurements (``python -m tools.bench``): peak memory and how it was
read, the device and library versions, the settings of the run, progress notes and the closing table."""
from __future__ import annotations

import platform
import resource
import sys
from argparse import Namespace

import torch

from solvers.train_settings import OptimSettings

MIB = 1024 * 1024


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


def settings(args: Namespace) -> dict:
    optim = OptimSettings()
    return {
        "device": args.device, "paths": args.paths, "batch_sizes": args.batch_size, "final_sizes": args.final_size,
        "steps": args.steps, "steps_requested": args.steps_requested, "warmup": args.warmup,
        "train_gen_iter": args.train_gen_iter, "infer_batch": args.infer_batch, "infer_iters": args.infer_iters,
        "infer_warmup": args.infer_warmup, "threads_requested": args.threads, "seed": args.seed, "lr": optim.lr,
        "betas": list(optim.betas), "compile": args.compile, "compile_mode": args.compile_mode,
    }


# ---------------------------------------------------------------- reporting
def speedups(runs: list[dict]) -> dict:
    """fast / plain per size and batch size, keyed "128px batch 25"."""
    ratios = {}
    for key in dict.fromkeys((r["final_size"], r["batch_size"]) for r in runs):
        by_path = {r["path"]: r for r in runs if (r["final_size"], r["batch_size"]) == key}
        if {"plain", "fast"} <= by_path.keys():
            plain, fast = by_path["plain"], by_path["fast"]
            infer = (None if plain["infer_frames_per_s"] is None
                     else fast["infer_frames_per_s"] / plain["infer_frames_per_s"])
            ratios[f"{key[0]}px batch {key[1]}"] = {
                "train": fast["train_images_per_s"] / plain["train_images_per_s"], "infer": infer}
    return ratios


def note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_table(result: dict) -> str:
    rows = ["path  size  batch  settings                                          train img/s  infer fr/s  "
            "GFLOP/img  MFU train  MFU infer  peak MiB"]
    for r in result["runs"]:
        mfu_t = "-" if r["train_mfu"] is None else f"{100 * r['train_mfu']:.1f}%"
        mfu_i = "-" if r["infer_mfu"] is None else f"{100 * r['infer_mfu']:.1f}%"
        infer = "-" if r["infer_frames_per_s"] is None else f"{r['infer_frames_per_s']:.2f}"
        rows.append(f"{r['path']:<5} {r['final_size']:>4}  {r['batch_size']:>5}  {r['settings_text'][:48]:<48}  "
                    f"{r['train_images_per_s']:>11.2f}  {infer:>10}  "
                    f"{r['train_flops_per_image'] / 1e9:>9.2f}  {mfu_t:>9}  {mfu_i:>9}  {r['peak_memory_mib']:>8.0f}")
    for key, ratio in result["speedups"].items():
        infer = "" if ratio["infer"] is None else f", inference x{ratio['infer']:.2f}"
        rows.append(f"fast / plain at {key}: train x{ratio['train']:.2f}{infer}")
    comm = result["ddp_communication"]
    per_step = comm["mean_allreduce_bytes_per_step"] / MIB
    ring8 = comm["ring_bytes_sent_per_rank_per_step"]["8"] / MIB
    rows.append(f"DDP all-reduce per step (mean over a D/G cycle): {per_step:.1f} MiB of fp32 gradients; "
                f"ring traffic per rank with 8 ranks {ring8:.1f} MiB")
    for loader in result["loader"]:
        rows.append(f"loader alone at {loader['final_size']}px: {loader['loader_images_per_s']:.0f} images/s "
                    f"({'RAM cache' if loader['loader_cached_in_ram'] else 'streamed'})")
    env = result["environment"]
    rows.append(f"{env['device_name']}, {env['threads']} threads, torch {env['torch_version']}; G "
                f"{result['g_params'] / 1e6:.2f}M, D {result['d_params'] / 1e6:.2f}M params; peak: "
                + "; ".join(sorted({r['peak_tflops_source'] for r in result['runs']})))
    return "\n".join(rows)
