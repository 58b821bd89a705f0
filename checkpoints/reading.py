"""The one door to model files: ``read(source, load_epoch, fmt)`` resolves a file or run folder, detects the format,
reads the file once and returns a ``Checkpoint`` (path + native state dict). Test mode, fine-tuning, resume, export
and the tools take what it read; none of them opens the file again.

    read -> locate.find_checkpoint (names only) -> one torch.load: native.read_native (this toolkit's files)
                                                         or seed_formats.read_weights -> importers.import_weights
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from checkpoints import importers, locate, native
from checkpoints.seed_formats import normalise_format, read_weights
from models.model_registry import build_generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """What ``read`` found and read: the file and its contents as this toolkit's checkpoint dict."""

    path: Path
    state: dict

    @property
    def model_args(self) -> dict:
        return self.state["model"]

    @property
    def epoch(self) -> int:
        return self.state["progress"]["epoch"]

    def generator(self) -> torch.nn.Module:
        """G rebuilt from the checkpoint alone (the registry builds it from ``model``), weights loaded strictly."""
        generator = build_generator(self.model_args)
        native.load_state_strict(generator, self.state["G"], "generator", self.path)
        return generator


def read(source: str | Path, load_epoch="latest", fmt: str = "native", *, need_critic: bool = False) -> Checkpoint:
    """Find, read once and check a checkpoint. ``fmt``: "native" (strict: this toolkit's files only), "auto" (seed
    formats detected and converted in memory, nothing written), or a seed's format named by ``--ckpt_format``.
    ``need_critic`` (fine-tuning) requires the critic's weights too."""
    fmt = normalise_format(fmt)
    path = locate.find_checkpoint(source, load_epoch, fmt)
    state = _state(path, fmt, need_critic)
    return Checkpoint(path, native.require_critic(state, path) if need_critic else state)


def _state(path: Path, fmt: str, need_critic: bool) -> dict:
    if fmt == "native" or (fmt == "auto" and native.native_by_name(path)):
        return native.read_native(path)
    raw = read_weights(path, fmt)
    if native.is_native(raw):
        return native.check_native(raw, path)
    imported = importers.import_weights(path, raw, fmt, need_critic=need_critic)
    for line in imported.describe():
        log.info("import %s", line)
    return imported.native_state()
