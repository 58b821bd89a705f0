"""GANimation generator (attention + colour heads) and critic (patch critic + AU regression head).

Sub-module names follow the ganimation_replicate / ULME-GAN layout (``model.N``, ``color_top``, ``au_top``,
``dis_top``, ``aus_top``) so their released weights map onto these modules one to one.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# "instance": InstanceNorm without affine parameters, convolutions carry a bias (ganimation_replicate, ULME-GAN).
# "instance_affine": InstanceNorm with affine scale/shift, convolutions without bias (original GANimation).
# N2ME's neutral model has neither affine norms nor conv biases: it imports exactly as "instance" with zero biases.
NORMS = ("instance", "instance_affine")


def _norm(channels: int, norm: str) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"unknown norm '{norm}', choose from {NORMS}")
    return nn.InstanceNorm2d(channels, affine=(norm == "instance_affine"), track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        bias = norm == "instance"
        self.conv_block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=bias), _norm(channels, norm), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=bias), _norm(channels, norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class Generator(nn.Module):
    """G(x, y) -> (result, attention A, colour C) with result = A * x + (1 - A) * C.

    A = 1 keeps the input pixel (the GANimation code's convention; the paper writes the opposite).
    The AU vector y (scaled to [0, 1]) is tiled over the image and concatenated to the RGB channels.
    """

    def __init__(self, *, img_nc: int = 3, aus_nc: int = 17, ngf: int = 64, n_blocks: int = 6,
                 norm: str = "instance"):
        super().__init__()
        self.aus_nc = aus_nc
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(img_nc + aus_nc, ngf, 7, 1, 3, bias=bias), _norm(ngf, norm),
                                   nn.ReLU(inplace=True)]
        ch = ngf
        for _ in range(2):  # two stride-2 downsamplings
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=bias), _norm(ch * 2, norm), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResidualBlock(ch, norm) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=bias), _norm(ch // 2, norm),
                       nn.ReLU(inplace=True)]
            ch //= 2
        self.model = nn.Sequential(*layers)
        self.color_top = nn.Sequential(nn.Conv2d(ch, img_nc, 7, 1, 3, bias=False), nn.Tanh())
        self.au_top = nn.Sequential(nn.Conv2d(ch, 1, 7, 1, 3, bias=False), nn.Sigmoid())

    def forward(self, img: torch.Tensor, aus: torch.Tensor):
        cond = aus.to(img.dtype)[:, :, None, None].expand(-1, -1, img.shape[2], img.shape[3])
        features = self.model(torch.cat([img, cond], dim=1))
        color = self.color_top(features)
        attention = self.au_top(features)
        result = attention * img + (1 - attention) * color
        return result, attention, color


def default_d_layers(final_size: int) -> int:
    """Six stride-2 layers at 128 px (a 2x2 patch map); fewer for small test images, capped at six above."""
    return max(1, min(6, int(math.log2(final_size)) - 1))


class Discriminator(nn.Module):
    """Critic: strided convs with LeakyReLU(0.01) and no normalisation (WGAN-GP forbids batch statistics).

    Returns the patch critic map and the regressed AU vector (no sigmoid, trained with MSE).
    """

    def __init__(self, *, img_nc: int = 3, aus_nc: int = 17, final_size: int = 128, ndf: int = 64,
                 n_layers: int | None = None):
        super().__init__()
        n_layers = n_layers or default_d_layers(final_size)
        if final_size % (2 ** n_layers):
            raise ValueError(f"final_size {final_size} is not divisible by 2**{n_layers} critic downsamplings")
        layers: list[nn.Module] = []
        in_ch, ch = img_nc, ndf
        for _ in range(n_layers):
            layers += [nn.Conv2d(in_ch, ch, 4, 2, 1), nn.LeakyReLU(0.01, inplace=True)]
            in_ch, ch = ch, ch * 2
        self.model = nn.Sequential(*layers)
        feature_size = final_size // (2 ** n_layers)
        self.dis_top = nn.Conv2d(in_ch, 1, 3, 1, 1, bias=False)
        self.aus_top = nn.Conv2d(in_ch, aus_nc, feature_size, 1, 0, bias=False)

    def forward(self, img: torch.Tensor):
        features = self.model(img)
        return self.dis_top(features), self.aus_top(features).flatten(1)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """N(0, 0.02) convolutions and N(1, 0.02) norm scales, as GANimation initialises."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
