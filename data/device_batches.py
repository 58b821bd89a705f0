"""The device data path: the decoded training set held on the training device, batches drawn by index.

The RAM cache of ``data/dataset.py`` (one uint8 tensor) is copied to the device once; 9,281 faces at 128 px are
456 MB, a few per cent of a data-centre GPU. Each epoch's order is the sampler's own (``epoch_permutation``,
this rank's stride) and goes to the device in one transfer; a batch is then an index slice, a gather and
``prepare_batch`` with the run's generator on the same device. No DataLoader, no worker processes, no pinned
copies, no host work per step.

The batches are the loader path's batches: same order, same augmentation code, same draws from the same generator.
On CPU (generator on the CPU either way) the two paths give identical tensors; on CUDA the generator lives on the
GPU, so the random numbers differ from the loader path's but follow the same distributions. Resuming needs only
what the loader path needs: epoch, batch within it, and the generator's state.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from data.augment import prepare_batch
from data.sampler import epoch_permutation

CHOICES = ("auto", "on", "off")
DEVICE_SHARE_LIMIT = 0.25  # auto: on when the set takes at most this share of the GPU's free memory


@dataclass(frozen=True)
class BatchSettings:
    batch_size: int
    final_size: int
    crop: bool
    flip: bool
    aus_noise: float
    seed: int
    shuffle: bool = True
    rank: int = 0
    world_size: int = 1
    channels_last: bool = False


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE_LIMIT * free


def use_device_path(mode: str, pixels: torch.Tensor | None, device: torch.device) -> bool:
    """``--data_on_device``: auto = on for CUDA when the decoded set is cached and small enough; on = always
    (needs the RAM cache); off = the DataLoader path."""
    if mode not in CHOICES:
        raise ValueError(f"--data_on_device takes one of {CHOICES}, got {mode!r}")
    if mode == "off":
        return False
    if pixels is None:
        if mode == "on":
            raise ValueError("--data_on_device on needs the decoded images in memory: use --cache_images auto or "
                             "ram, not stream or off")
        return False
    return mode == "on" or fits_on_device(pixels.numel() * pixels.element_size(), device)


class DeviceBatches:
    """Training batches from ``pixels`` (N, 3, L, L) uint8 and ``aus`` (N, A) float, both moved to ``device``."""

    def __init__(self, pixels: torch.Tensor, aus: torch.Tensor, device: torch.device, settings: BatchSettings):
        self.pixels = pixels.to(device)
        self.aus = aus.to(device=device, dtype=torch.float32)
        self.device, self.settings = device, settings

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def batches_per_epoch(self) -> int:
        s = self.settings
        return len(self) // (s.batch_size * s.world_size)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's indices for ``epoch``, on the device: what ``EpochBatchSampler`` yields, concatenated."""
        s = self.settings
        order = epoch_permutation(len(self), s.seed, epoch, s.shuffle)[s.rank::s.world_size]
        return order[:self.batches_per_epoch() * s.batch_size].to(self.device)

    def epoch(self, epoch: int, generator: torch.Generator, start_batch: int = 0) -> Iterator[dict]:
        """The batch dicts of ``epoch`` from ``start_batch`` on; ``generator`` drives the augmentation."""
        s = self.settings
        order = self.epoch_order(epoch)
        for b in range(start_batch, self.batches_per_epoch()):
            idx = order[b * s.batch_size:(b + 1) * s.batch_size]
            batch = prepare_batch(self.pixels.index_select(0, idx), self.aus.index_select(0, idx),
                                  final_size=s.final_size, crop=s.crop, flip=s.flip, aus_noise=s.aus_noise,
                                  generator=generator)
            yield to_layout(batch, s.channels_last)


def to_layout(batch: dict, channels_last: bool) -> dict:
    """channels_last (NHWC) images for the fast path's convolutions; a no-op otherwise."""
    if channels_last:
        for key in ("src_img", "tar_img"):
            batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
    return batch
