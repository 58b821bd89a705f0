"""Sample grids: one row per face; columns in the visuals' order (GANimation: source | colour | attention | result |
reconstruction | target; models without attention skip colour and attention)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] (or a 1-channel mask in [0, 1]) -> HxWx3 uint8."""
    t = t.detach().float().cpu()
    if t.shape[0] == 1:  # attention mask: white = keep the input pixel
        t = t.expand(3, -1, -1) * 2 - 1
    return ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def sample_grid(visuals: dict[str, torch.Tensor], max_rows: int = 8, pad: int = 2) -> np.ndarray:
    rows = min(max_rows, visuals["source"].shape[0])
    h, w = visuals["source"].shape[-2:]
    grid = np.full((rows * (h + pad) + pad, len(visuals) * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for r in range(rows):
        for c, key in enumerate(visuals):
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            grid[top:top + h, left:left + w] = to_uint8_image(visuals[key][r])
    return grid


def save_png(grid: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
