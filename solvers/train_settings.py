"""What the trainer is told and where it stands: its settings (data, optimiser and precision, outputs), the
progress saved in every checkpoint, and the two pure rules behind its schedule (learning rate, cadences)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from solvers.fast_path import FastPath


def lr_factor(epoch: int, niter: int, niter_decay: int) -> float:
    """1 up to epoch ``niter``, then a linear ramp whose last epoch still trains at lr/(niter_decay+1).

    The seeds' schedulers reach exactly 0 on the final epoch, wasting it; this never does.
    """
    if epoch <= niter:
        return 1.0
    return 1.0 - (epoch - niter) / (niter_decay + 1)


def crossed(before: int, after: int, every: int) -> bool:
    """True when a counter moving from ``before`` to ``after`` passes a multiple of ``every``."""
    return every > 0 and after // every > before // every


@dataclass
class DataSettings:
    data_root: str
    imgs_dir: str = "imgs"
    aus_file: str | None = None
    batch_size: int = 25
    n_threads: int = 4
    serial_batches: bool = False
    max_dataset_size: int | None = None
    final_size: int = 128
    load_size: int = 128
    random_crop: bool = False
    flip: bool = True
    aus_noise: float = 0.1
    skip_bad: bool = False
    cache_images: str = "auto"
    clip_aus: bool = False
    data_on_device: str = "auto"  # see data/device_batches.py


@dataclass
class OptimSettings:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    train_gen_iter: int = 5
    epoch_count: int = 1
    niter: int = 20
    niter_decay: int = 10
    max_steps: int | None = None
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    fused_adam: bool = False
    cudnn_benchmark: bool = False
    compile_mode: str = "default"  # torch.compile's mode for the step ("reduce-overhead": CUDA graphs)

    def speed(self) -> FastPath:
        return FastPath(amp=self.amp, channels_last=self.channels_last, compile=self.compile,
                        fused_adam=self.fused_adam, cudnn_benchmark=self.cudnn_benchmark)


@dataclass
class OutputSettings:
    run_dir: Path
    save_epoch_freq: int = 1
    save_latest_freq: int = 0
    keep_last: int = 0
    print_losses_freq: int = 1000
    sample_img_freq: int = 5000
    progress: bool = True
    tensorboard: bool = False
    visdom: dict | None = None  # VisdomDashboard keyword arguments, or None


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint. ``batch`` counts batches done in ``epoch``."""

    epoch: int
    batch: int = 0
    step: int = 0
    images: int = 0
