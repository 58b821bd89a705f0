"""N2ME's micro-expression generator: a U-Net whose bottleneck AdaIN residual block carries the AU condition.

The condition is an AU *difference* (target AUs - the input face's AUs, on the network's [-1, 1] scale), so
G(x, 0) must return x (the self-reconstruction loss in models/ganimation.py enforces it). The output is RGB
directly: no attention mask, unlike GANimation.
"""
from __future__ import annotations

import torch
from torch import nn


class AdaIN(nn.Module):
    """Instance normalisation whose scale and shift are predicted from the condition vector."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.to_scale_shift = nn.Linear(cond_dim, 2 * channels)
        # Start as plain instance norm (scale 1, shift 0) so an untrained block passes features through.
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.to_scale_shift(cond).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


class AdaINResidualBlock(nn.Module):
    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.norm1 = AdaIN(channels, cond_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.norm2 = AdaIN(channels, cond_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm1(self.conv1(x), cond))
        return x + self.norm2(self.conv2(h), cond)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.InstanceNorm2d(cout, affine=True),
                         nn.ReLU(inplace=True))


def _fuse(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True))


class UNetAdaINGenerator(nn.Module):
    """G(x, d) -> (result, None, None): the same call shape as GANimation's generator, without attention/colour."""

    def __init__(self, *, img_nc: int = 3, aus_nc: int = 17, ngf: int = 64, n_down: int = 3, cond_dim: int = 128):
        super().__init__()
        self.aus_nc = aus_nc
        self.stem = nn.Sequential(nn.Conv2d(img_nc, ngf, 7, 1, 3), nn.InstanceNorm2d(ngf, affine=True),
                                  nn.ReLU(inplace=True))
        widths = [ngf * 2 ** i for i in range(n_down + 1)]  # e.g. 64, 128, 256, 512
        self.down = nn.ModuleList(_down(widths[i], widths[i + 1]) for i in range(n_down))
        self.cond = nn.Sequential(nn.Linear(aus_nc, cond_dim), nn.ReLU(inplace=True), nn.Linear(cond_dim, cond_dim))
        self.bottleneck = AdaINResidualBlock(widths[-1], cond_dim)
        self.up = nn.ModuleList(_up(widths[i + 1], widths[i]) for i in reversed(range(n_down)))
        self.fuse = nn.ModuleList(_fuse(2 * widths[i], widths[i]) for i in reversed(range(n_down)))
        self.to_rgb = nn.Sequential(nn.Conv2d(ngf, img_nc, 7, 1, 3), nn.Tanh())

    def forward(self, img: torch.Tensor, aus_difference: torch.Tensor):
        skips = [self.stem(img)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = self.bottleneck(skips.pop(), self.cond(aus_difference.to(img.dtype)))
        for up, fuse in zip(self.up, self.fuse):
            h = fuse(torch.cat([up(h), skips.pop()], dim=1))
        return self.to_rgb(h), None, None
