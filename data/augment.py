"""Batch-level random operations, on whatever device the batch lives on, driven by an explicit generator.

Keeping every random draw here (and not in loader workers) makes a training step a pure function of the batch
indices and the generator state, which is what lets ``--resume`` continue bit-for-bit.
"""
from __future__ import annotations

import torch


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range the generator's tanh head produces."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Independent random size x size crop per image (no-op when already that size)."""
    n, _, h, w = images.shape
    if (h, w) == (size, size):
        return images
    tops = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
    return torch.stack([img[:, top:top + size, left:left + size] for img, top, left in zip(images, tops, lefts)])


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image with probability 1/2. AU intensities are symmetric in OpenFace, so labels stay valid."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    flip = flip.to(images.device).view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)


def target_aus(src_aus: torch.Tensor, generator: torch.Generator, noise: float) -> torch.Tensor:
    """Target condition for each source: the AUs of another image of the (shuffled) batch, plus U(-noise, noise).

    Rolling the batch by one pairs each image with a random other one without a second dataset lookup, and keeps
    the target image available for the sample grid. Intensities are clamped at 0 (N2ME's fix: negative AUs are
    meaningless).
    """
    tar = src_aus.roll(1, dims=0)
    if noise > 0:
        jitter = torch.rand(tar.shape, generator=generator).to(tar.device) * (2 * noise) - noise
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
