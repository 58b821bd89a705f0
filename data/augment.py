"""Batch-level random operations, on whatever device the batch lives on, driven by an explicit generator.

Keeping every random draw here (and not in loader workers) makes a training step a pure function of the batch
indices and the generator state, which is what lets ``--resume`` continue bit-for-bit. Draws are made on the
generator's device and nothing is read back to the host, so with a generator on the GPU (the device data path,
``data/device_batches.py``) a batch is prepared without host work or synchronisation.
"""
from __future__ import annotations

import torch


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range the generator's tanh head produces."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Independent random size x size crop per image (no-op when already that size)."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    tops = _draw(torch.randint, generator, images.device, 0, h - size + 1, (n,))
    lefts = _draw(torch.randint, generator, images.device, 0, w - size + 1, (n,))
    # One gather with per-image row and column indices: no offsets are read back to the host.
    offsets = torch.arange(size, device=images.device)
    rows = (tops[:, None] + offsets).view(n, 1, size, 1)
    cols = (lefts[:, None] + offsets).view(n, 1, 1, size)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=images.device).view(1, c, 1, 1)
    return images[batch, channels, rows, cols]


def _draw(fn, generator: torch.Generator, device: torch.device, *args) -> torch.Tensor:
    """``fn(*args)`` drawn on the generator's device, then moved to where the images are (a no-op when equal)."""
    return fn(*args, generator=generator, device=generator.device).to(device, non_blocking=True)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image with probability 1/2. AU intensities are symmetric in OpenFace, so labels stay valid."""
    flip = _draw(torch.rand, generator, images.device, images.shape[0]) < 0.5
    flip = flip.view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)


def target_aus(src_aus: torch.Tensor, generator: torch.Generator, noise: float) -> torch.Tensor:
    """Target condition for each source: the AUs of another image of the (shuffled) batch, plus U(-noise, noise).

    Rolling the batch by one pairs each image with a random other one without a second dataset lookup, and keeps
    the target image available for the sample grid. Intensities are clamped at 0 (N2ME's fix: negative AUs are
    meaningless).
    """
    tar = src_aus.roll(1, dims=0)
    if noise > 0:
        jitter = _draw(torch.rand, generator, tar.device, tar.shape) * (2 * noise) - noise
        tar = (tar + jitter).clamp_(min=0.0)
    return tar


def prepare_batch(images_uint8: torch.Tensor, aus: torch.Tensor, *, final_size: int, crop: bool, flip: bool,
                  aus_noise: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """uint8 images + scaled AUs -> the training batch dict used by the model's losses."""
    imgs = random_crop(images_uint8, final_size, generator) if crop else center_crop(images_uint8, final_size)
    if flip:
        imgs = random_flip(imgs, generator)
    src = to_unit_range(imgs)
    return {"src_img": src, "src_aus": aus, "tar_img": src.roll(1, dims=0),
            "tar_aus": target_aus(aus, generator, aus_noise)}
