"""Import the checkpoints that users of the seed systems already have (ULME-GAN, ganimation_replicate, original
GANimation, N2ME) into this toolkit's networks, in memory, without retraining and without running their code.

What the seeds' files look like, how their keys map to this toolkit's modules and how the format is detected:
checkpoints/seed_formats.py. Here: inferring the model arguments from the tensor shapes and checking the weights
against the networks they build (the networks come from the model registry, ``models/model_registry.py``).
``import_weights`` converts what ``checkpoints.read`` has already read; ``import_checkpoint`` finds and reads a file
itself (the ``python -m checkpoints`` command and tests).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from catalog.au_schema import schema_for_size
from checkpoints import locate, native
from checkpoints.seed_formats import (
    ALIASES,
    DEFAULT_FINAL_SIZE,
    LAYOUTS,
    LEGACY_STATS,
    KeyEvidence,
    Layout,
    Renamed,
    as_state_dict,
    choose_layout,
    classify_keys,
    compatible,
    drop_legacy_stats,
    first_few,
    layout_from_name,
    normalise_format,
    read_weights,
    reconcile_conv_biases,
    rename,
    translate,
    tried,
    tried_as,
    undo_dropout_shift,
)
from models.model_registry import spec
from models.networks import default_d_layers

log = logging.getLogger(__name__)

# Every seed's generator and critic is this toolkit's GANimation pair (seed_formats.py: the key mapping).
SEED_MODEL = "ganimation"


# ------------------------------------------------------------------------------------------------ inference
def _tensor(r: Renamed, key: str, what: str, layout: Layout, path: Path, fmt: str) -> torch.Tensor:
    t = r.weights.get(key)
    if t is None or t.dim() != 4:
        src = translate(key, layout.g_rules if what == "generator" else layout.d_rules, reverse=True) or key
        raise ValueError(f"{path}: tried {tried_as(layout, fmt)}: missing key {src}, the "
                         f"{what}'s {'first convolution' if key.endswith('0.weight') else 'AU head'}, which the "
                         f"model arguments are read from; the file's first keys: {first_few(r.source.values())}")
    return t


def infer_generator(r: Renamed, layout: Layout, path: Path, fmt: str) -> tuple[dict, list[str]]:
    first = _tensor(r, "model.0.weight", "generator", layout, path, fmt)
    blocks = sorted({int(m.group(1)) for k in r.weights if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    affine = "model.1.weight" in r.weights
    norm = "instance_affine" if affine else "instance"
    biased = "model.0.bias" in r.weights
    args = {"img_nc": 3, "aus_nc": first.shape[1] - 3, "ngf": first.shape[0], "n_blocks": len(blocks), "norm": norm}
    why = [f"aus_nc={args['aus_nc']} (first convolution has {first.shape[1]} input channels = 3 RGB + AUs)",
           f"ngf={args['ngf']} (its output channels), n_blocks={len(blocks)} (residual blocks found)",
           f"norm={norm} ({'affine InstanceNorm weights' if affine else 'InstanceNorm without affine weights'}, "
           f"{'with' if biased else 'no'} convolution biases)"]
    return args, why


def infer_critic(r: Renamed, layout: Layout, path: Path, fmt: str) -> tuple[dict, list[str]]:
    first = _tensor(r, "model.0.weight", "critic", layout, path, fmt)
    head = _tensor(r, "aus_top.weight", "critic", layout, path, fmt)
    n_layers = len([k for k in r.weights if re.match(r"model\.\d+\.weight$", k)])
    final_size = head.shape[-1] * 2 ** n_layers
    args = {"img_nc": first.shape[1], "aus_nc": head.shape[0], "final_size": final_size, "ndf": first.shape[0],
            "n_layers": n_layers}
    why = [f"ndf={args['ndf']}, d_layers={n_layers} (stride-2 convolutions)",
           f"final_size={final_size} (AU head kernel {head.shape[-1]} x 2^{n_layers})"]
    return args, why


def _expected_shapes(cls: type, args: dict) -> dict:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        return {k: v for k, v in cls(**args).state_dict().items()}


def check_fits(r: Renamed, expected: dict, rules: tuple, what: str, args: dict, layout: Layout, path: Path,
               fmt: str) -> None:
    """Strict: every expected tensor present with its shape, nothing left over; named as the file names them."""
    missing = [translate(k, rules, reverse=True) or k for k in expected if k not in r.weights]
    unexpected = list(r.unmapped) + [r.source[k] for k in r.weights if k not in expected]
    shapes = [f"{r.source[k]}: file {tuple(r.weights[k].shape)} vs expected {tuple(v.shape)}"
              for k, v in expected.items() if k in r.weights and tuple(r.weights[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return
    parts = [f"{label} ({len(items)}): {first_few(items)}"
             for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
             if items]
    arg_text = ", ".join(f"{k}={v}" for k, v in args.items())
    raise ValueError(f"{path}: tried {tried_as(layout, fmt)}: the {what} weights do not "
                     f"fit the network their shapes imply ({arg_text}):\n  " + "\n  ".join(parts))


# ------------------------------------------------------------------------------------------------ import
@dataclass
class ImportedCheckpoint:
    """What a native checkpoint needs, from foreign files, and an account of how it was read."""

    format: str
    reason: str
    generator_file: Path
    critic_file: Path | None
    epoch: int
    model_args: dict
    G: dict
    D: dict | None
    inferred: list[str]
    notes: list[str]

    def native_state(self) -> dict:
        """The layout solvers/trainer.py writes, without optimizer and RNG states (a foreign run has none here)."""
        state = {
            "kind": native.KIND, "format_version": native.FORMAT_VERSION,
            "progress": {"epoch": self.epoch, "batch": 0, "step": 0, "images": 0},
            "lr": None, "model": self.model_args, "G": self.G, "options": {},
            "imported_from": {"format": self.format, "generator": str(self.generator_file),
                              "critic": str(self.critic_file) if self.critic_file else None, "notes": self.notes},
        }
        if self.D is not None:
            state["D"] = self.D
        return state

    def describe(self) -> list[str]:
        lines = [f"format: {self.format} ({LAYOUTS[ALIASES.get(self.format, self.format)].title}); chosen by "
                 f"{self.reason}",
                 f"generator: {self.generator_file}",
                 f"critic: {self.critic_file or 'none'}",
                 f"epoch: {self.epoch}",
                 f"AU schema: {self.model_args['aus_schema']}"]
        lines += [f"inferred: {line}" for line in self.inferred]
        lines += [f"note: {line}" for line in self.notes]
        return lines


def _generator_role_check(ev: KeyEvidence, name_role: str | None, path: Path, layout_hint: Layout | None,
                          epoch: str | None, fmt: str) -> None:
    role = ev.role or name_role
    if role == "D":
        companion = ""
        if layout_hint is not None and epoch is not None:
            g = path.with_name(layout_hint.file_name(epoch, "G"))
            companion = f" ({g.name} beside it)" if g.is_file() else f" ({layout_hint.file_name(epoch, 'G')})"
        raise ValueError(f"{path}: holds a critic (discriminator; keys {ev.keys}), not a generator (tried "
                         f"{tried(fmt)}): give the generator file{companion}")
    if role is None:
        raise ValueError(f"{path}: cannot tell whether this is a generator or a critic (keys {ev.keys}, no head "
                         f"keys, and the file name follows no seed's naming; tried {tried(fmt)})")


def import_checkpoint(source: str | Path, ckpt_format: str = "auto", load_epoch="latest",
                      need_critic: bool = False, final_size: int | None = None) -> ImportedCheckpoint:
    """Find a foreign generator (file or seed run folder), read it and import it (+ its critic found beside it)."""
    fmt = normalise_format(ckpt_format)
    if fmt == "native":
        raise ValueError(f"{source}: --ckpt_format native loads this toolkit's checkpoints; nothing to import")
    g_path = locate.find_checkpoint(source, load_epoch, fmt)
    return import_weights(g_path, read_weights(g_path, fmt), fmt, need_critic, final_size)


def import_weights(g_path: Path, raw, fmt: str = "auto", need_critic: bool = False,
                   final_size: int | None = None) -> ImportedCheckpoint:
    """A foreign generator file's object, already read, as native weights and model arguments; its critic, when
    the seed's naming puts one beside it, is read here (the one other file an import opens)."""
    fmt = normalise_format(fmt)
    if native.is_native(raw):
        raise ValueError(f"{g_path}: already a checkpoint of this toolkit; nothing to import")
    sd, prefix_notes = as_state_dict(raw, g_path, fmt)
    ev = classify_keys(sd)
    name_layout, name_role, name_epoch = layout_from_name(g_path)
    if ev.family not in (None, "n2me_unet"):  # those two get their own message from choose_layout
        _generator_role_check(ev, name_role, g_path, name_layout, name_epoch, fmt)
    layout, reason = choose_layout(fmt, ev, name_layout, "G", g_path)
    label = fmt if fmt != "auto" else layout.name

    g = rename(sd, layout.g_rules)
    g.notes[:0] = prefix_notes
    drop_legacy_stats(g, layout, g_path)
    if layout.family == "replicate":
        undo_dropout_shift(g)
    g_args, inferred = infer_generator(g, layout, g_path, fmt)
    schema = _schema(g_args["aus_nc"], g_path)
    expected_g = _expected_shapes(spec(SEED_MODEL).generator, g_args)
    reconcile_conv_biases(g, expected_g)
    check_fits(g, expected_g, layout.g_rules, "generator", g_args, layout, g_path, fmt)

    # The critic sits beside the generator under the same naming (GANimation and N2ME critics are the same network).
    same_family = name_layout is not None and name_layout.family == layout.family
    d_path = g_path.with_name(name_layout.file_name(name_epoch, "D")) if same_family else None
    d_weights, notes = None, list(g.notes)
    if d_path is not None and d_path.is_file():
        d, d_args, d_inferred = _import_critic(d_path, layout, fmt)
        if d_args["aus_nc"] != g_args["aus_nc"]:
            raise ValueError(f"{d_path}: the critic predicts {d_args['aus_nc']} AUs but the generator {g_path.name} "
                             f"takes {g_args['aus_nc']}: they are not from the same run")
        if final_size is not None and final_size != d_args["final_size"]:
            raise ValueError(f"--final_size {final_size}: the critic {d_path.name} was trained at "
                             f"{d_args['final_size']} px (AU head kernel x 2^layers)")
        d_weights, notes = d.weights, notes + d.notes
        inferred += d_inferred
    else:
        if need_critic:
            raise ValueError(f"{g_path}: fine-tuning trains the generator against its critic, and no critic file "
                             f"was found ({d_path or 'the file name follows no seed naming, so none was looked for'})"
                             f"; give the run folder with both {layout.pattern}")
        size = final_size or DEFAULT_FINAL_SIZE
        d_args = {"img_nc": 3, "aus_nc": g_args["aus_nc"], "final_size": size, "ndf": 64,
                  "n_layers": default_d_layers(size)}
        origin = "--final_size" if final_size else "no critic file: the seeds train at 128 px, assumed"
        inferred.append(f"final_size={size} ({origin}); critic arguments are defaults")
    model_args = {"name": SEED_MODEL, "aus_schema": schema.key, "generator": g_args, "discriminator": d_args}
    return ImportedCheckpoint(label, reason, g_path, d_path if d_weights is not None else None,
                              int(name_epoch) if name_epoch is not None else 0, model_args,
                              g.weights, d_weights, inferred, notes)


def _import_critic(d_path: Path, layout: Layout, fmt: str) -> tuple[Renamed, dict, list[str]]:
    sd, notes = as_state_dict(read_weights(d_path, fmt), d_path, fmt)
    ev = classify_keys(sd)
    if ev.role == "G" or ev.family == "n2me_unet":
        raise ValueError(f"{d_path}: holds a generator (keys {ev.keys}), not the critic its file name says "
                         f"(tried {tried_as(layout, fmt)})")
    if not compatible(layout, ev.family):
        raise ValueError(f"{d_path}: tried format '{layout.name}' for the critic, but its keys ({ev.keys}) are "
                         f"those of {LAYOUTS[ev.family].title if ev.family in LAYOUTS else 'another format'}")
    d = rename(sd, layout.d_rules)
    d.notes[:0] = [f"critic: {n}" for n in notes]
    stats = [k for k in d.weights if k.rsplit(".", 1)[-1] in LEGACY_STATS]
    if stats:
        raise ValueError(f"{d_path}: the critic has normalisation statistics ({first_few(stats, 3)}); the seeds' "
                         f"critics have no normalisation layers")
    args, inferred = infer_critic(d, layout, d_path, fmt)
    check_fits(d, _expected_shapes(spec(SEED_MODEL).critic, args), layout.d_rules, "critic", args, layout, d_path, fmt)
    return d, args, inferred


def _schema(aus_nc: int, path: Path):
    try:
        return schema_for_size(aus_nc)
    except ValueError as exc:
        raise ValueError(f"{path}: the generator takes {aus_nc} AU values (first convolution: {aus_nc + 3} input "
                         f"channels = 3 RGB + AUs): {exc}") from None
