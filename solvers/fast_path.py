"""The fast path: how training, inference and the benchmark run the networks when speed matters.

``--fast_path on`` turns on together, on CUDA: bf16 autocast, channels_last memory layout, ``torch.compile`` of G
and D, fused Adam and ``cudnn.benchmark``. On CPU it means ``torch.compile`` (with weight freezing for inference)
and fused Adam in fp32: on the AVX-512 Xeon this was measured on, bf16 autocast and channels_last made oneDNN's
convolutions slower, not faster (docs/benchmarks.md). ``auto`` (the default) means on for CUDA and off on CPU,
where the plain fp32 eager path is the reference that every test runs and compiling (about a minute on 2 cores)
would cost more than a short job gains. Each part keeps its own switch (``--amp``,
``--channels_last``, ``--compile``) so one can be added to the plain path or taken out of the fast one.

Training compiles whole objectives (``solvers/train_step.py``), the gradient penalty included: its input gradient
is taken with ``torch.func.grad``, which compiles, where ``autograd.grad(create_graph=True)`` would not.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch

log = logging.getLogger(__name__)

CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class FastPath:
    amp: bool = False  # bf16 autocast
    channels_last: bool = False
    compile: bool = False  # torch.compile of the training objectives (G and D for inference)
    fused_adam: bool = False
    cudnn_benchmark: bool = False

    def describe(self) -> str:
        on = [name for name, value in asdict(self).items() if value]
        return ", ".join(on) if on else "plain fp32 eager"


PLAIN = FastPath()


def resolve(mode: str, device: torch.device, *, amp: bool = False, channels_last: bool = False,
            compile_mode: str = "auto") -> FastPath:
    """The settings for ``--fast_path MODE`` on ``device``; ``amp``/``channels_last`` add to the plain path and
    ``compile_mode`` on/off overrides what the fast path says about compilation."""
    if mode not in CHOICES or compile_mode not in CHOICES:
        raise ValueError(f"--fast_path and --compile take one of {CHOICES}, got {mode!r}, {compile_mode!r}")
    fast = mode == "on" or (mode == "auto" and device.type == "cuda")
    compiled = fast if compile_mode == "auto" else compile_mode == "on"
    gpu_fast = fast and device.type == "cuda"
    return FastPath(amp=gpu_fast or amp, channels_last=gpu_fast or channels_last, compile=compiled,
                    fused_adam=fast and fused_adam_supported(device),
                    cudnn_benchmark=fast and device.type == "cuda")


def fused_adam_supported(device: torch.device) -> bool:
    # Fused Adam kernels exist for CUDA and (since torch 2.4) for CPU; other devices take the for-each path.
    return device.type in ("cuda", "cpu")


def adam(params, lr: float, betas: tuple[float, float], path: FastPath) -> torch.optim.Adam:
    """Adam as training uses it; fused or not, its state_dict has the same keys, so checkpoints move freely
    between the two paths."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True if path.fused_adam else None)


def apply_backend_settings(path: FastPath) -> None:
    if path.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True  # fixed image sizes: the autotuned convolution choice is reused


_COMPILER_CHECKED: dict[str, str | None] = {}


def compiler_problem(device: torch.device) -> str | None:
    """None when torch.compile works on this device here; else why not (no C++ compiler, no Triton, ...).

    Compilation is lazy, so a missing tool chain would only fail at the first training step; a tiny function is
    compiled and run once up front instead, and the run goes on eagerly with a warning if that fails."""
    key = device.type
    if key not in _COMPILER_CHECKED:
        try:
            probe = torch.compile(lambda x: torch.relu(x) * 2 + 1, dynamic=False)
            probe(torch.ones(8, device=device))
            _COMPILER_CHECKED[key] = None
        except Exception as err:  # any tool-chain failure: Inductor, Triton, the C++ compiler
            _COMPILER_CHECKED[key] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return _COMPILER_CHECKED[key]


def maybe_compile(module, path: FastPath, device: torch.device, inference: bool = False, mode: str | None = None):
    """``torch.compile(module)`` on the fast path, else the module (or function) itself. A compiled module shares
    the module's parameters: optimisers, checkpoints and DDP keep using the plain module.

    ``inference``: the weights are frozen into the graph (constant folding, oneDNN weight pre-packing on CPU);
    only for a module that is no longer trained. ``mode``: torch.compile's mode ("reduce-overhead" adds CUDA
    graphs); None is its default."""
    if not path.compile:
        return module
    problem = compiler_problem(device)
    if problem is not None:
        log.warning("torch.compile is unavailable here (%s): running eagerly", problem)
        return module
    # A graph that fails to compile later (an unsupported op) falls back to eager for that graph, not the run.
    torch._dynamo.config.suppress_errors = True
    if inference:  # torch.compile takes a mode or options, not both
        return torch.compile(module, dynamic=False, options={"freezing": True})
    return torch.compile(module, dynamic=False, mode=mode)
