"""Model registry: the one place that knows each model. ``MODELS`` maps a name to a ``ModelSpec``: its generator
and critic classes, how the generator is conditioned (target AUs, or the AU change N2ME's U-Net expects), which
command-line flags size its generator, its default loss weights and its ``--model`` help. ``options`` takes the
``--model`` choices from here and ``solvers`` builds the constructor arguments from it, so adding a model means
adding one entry here.

``model_args`` is what checkpoints store under "model", so a checkpoint rebuilds its own networks:
``{"name": "ganimation", "aus_schema": "openface17", "generator": {...}, "discriminator": {...}}``.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.ganimation import ABSOLUTE, Conditioning
from models.n2me import UNetAdaINGenerator
from models.networks import Discriminator, Generator


@dataclass(frozen=True)
class ModelSpec:
    generator: type
    critic: type
    conditioning: Conditioning
    generator_flags: tuple[str, ...]  # flags (beyond img_nc, aus_nc) that become the generator's keyword arguments
    default_self_rec: float  # --lambda_self_rec when not given: G(x, own AUs) = x
    help: str


MODELS = {
    "ganimation": ModelSpec(
        Generator, Discriminator, ABSOLUTE, generator_flags=("ngf", "n_blocks", "norm"), default_self_rec=0.0,
        help="attention + colour, absolute AU targets"),
    "n2me_unet": ModelSpec(
        UNetAdaINGenerator, Discriminator, Conditioning("difference"), generator_flags=("ngf", "n_down"),
        default_self_rec=10.0,
        help="N2ME's U-Net with an AdaIN bottleneck, conditioned on the AU change, direct RGB"),
}


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    return MODELS[name]


def conditioning(model_args: dict) -> Conditioning:
    return spec(model_args["name"]).conditioning


def build_networks(model_args: dict):
    s = spec(model_args["name"])
    return s.generator(**model_args["generator"]), s.critic(**model_args["discriminator"])


def build_generator(model_args: dict):
    """Only G, for test mode: a checkpoint's generator needs no critic."""
    return spec(model_args["name"]).generator(**model_args["generator"])
