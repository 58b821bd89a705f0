"""Model registry: name -> (generator class, critic class), built from plain keyword-argument dicts, and how each
generator is conditioned (target AUs, or the AU change N2ME's U-Net expects).

``model_args`` is what checkpoints store under "model", so a checkpoint rebuilds its own networks:
``{"name": "ganimation", "aus_schema": "openface17", "generator": {...}, "discriminator": {...}}``.
"""
from __future__ import annotations

from models.ganimation import ABSOLUTE, Conditioning
from models.n2me import UNetAdaINGenerator
from models.networks import Discriminator, Generator

MODELS = {"ganimation": (Generator, Discriminator), "n2me_unet": (UNetAdaINGenerator, Discriminator)}
CONDITIONING = {"ganimation": ABSOLUTE, "n2me_unet": Conditioning("difference")}


def conditioning(model_args: dict) -> Conditioning:
    return CONDITIONING[_checked_name(model_args)]


def _checked_name(model_args: dict) -> str:
    name = model_args["name"]
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    return name


def _classes(model_args: dict):
    return MODELS[_checked_name(model_args)]


def build_networks(model_args: dict):
    g_cls, d_cls = _classes(model_args)
    return g_cls(**model_args["generator"]), d_cls(**model_args["discriminator"])


def build_generator(model_args: dict):
    """Only G, for test mode: a checkpoint's generator needs no critic."""
    return _classes(model_args)[0](**model_args["generator"])
