"""Import the checkpoints that users of the seed systems already have (ULME-GAN, ganimation_replicate,
original GANimation, N2ME) into this toolkit's networks, without retraining and without running their code.

Every foreign format is one plain ``state_dict`` per network under that project's own file and key names. An import:

1. reads the file with ``torch.load(map_location="cpu", weights_only=True)``: tensors only, no code execution
   (N2ME saved straight from CUDA, so the CPU map location is always given);
2. detects the format from the key names (decisive) and the file name (a hint), and says which and why;
3. renames the keys to this toolkit's modules, removing what old files carry that no module has
   (``module.`` prefixes of ``nn.DataParallel``, pre-0.4 InstanceNorm running statistics);
4. infers the model arguments from the tensor shapes and checks the renamed weights against the networks those
   arguments build, strictly, reporting problems in the file's own key names.

Key mapping (file -> this toolkit). All three codebases build the generator trunk in the same order, so the
``nn.Sequential`` indices agree one to one and only the container names differ:

=============================  ==========================  ==================================  ====================
ULME-GAN / replicate           original GANimation         N2ME (neutral GANimation)           this toolkit
=============================  ==========================  ==================================  ====================
``model.K`` (K = 0, 3, 6)      ``main.K``                  ``main.K``                          ``model.K``
``model.K.conv_block.J``       ``main.K.main.J``           ``main.K.main.J``                   ``model.K.conv_block.J``
``color_top.0``                ``img_reg.0``               ``img_reg.0``                       ``color_top.0``
``au_top.0``                   ``attetion_reg.0`` (sic)    ``attention_reg.0``                 ``au_top.0``
``model.{0,2,..}`` (critic)    ``main.{0,2,..}``           ``main.{0,2,..}``                   ``model.{0,2,..}``
``dis_top``                    ``conv1``                   ``conv1``                           ``dis_top``
``aus_top``                    ``conv2``                   ``conv2``                           ``aus_top``
=============================  ==========================  ==================================  ====================

(K = 9 .. 8+n_blocks are residual blocks, J = 0, 3 their convolutions and, with affine InstanceNorm, J = 1, 4
their norms; the two transposed convolutions follow at 9+n_blocks and 12+n_blocks: 15 and 18 with 6 blocks.)

Normalisation variants, read from the tensors: ULME/replicate use InstanceNorm without affine parameters and
convolutions with bias (``norm="instance"``); GANimation uses affine InstanceNorm and no convolution bias
(``norm="instance_affine"``); N2ME's neutral generator has neither. Every trunk convolution feeds an InstanceNorm,
which subtracts the per-channel mean, so a convolution bias there has no effect: N2ME's weights load into
``norm="instance"`` with zero biases and compute exactly what they computed before.

Command line: ``python -m solvers.importers convert SOURCE --out native.pth`` and ``... inspect SOURCE``.
"""
from __future__ import annotations

import argparse
import atexit
import logging
import pickle
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.networks import Discriminator, Generator, default_d_layers
from openface.au_schema import schema_for_size
from solvers import checkpoint as ckpt

log = logging.getLogger(__name__)

FORMATS = ("auto", "native", "ulme", "replicate", "ganimation", "n2me")
ALIASES = {"ulme": "replicate"}  # ULME-GAN saves exactly what ganimation_replicate saves
DEFAULT_FINAL_SIZE = 128  # every seed trains at 128 px; used only when no critic file tells the size
LEGACY_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Layout:
    """One foreign format: file names and the key renaming rules for generator and critic."""

    name: str
    title: str
    family: str  # "replicate" or "gan" (GANimation and N2ME share the critic and most generator names)
    file_re: re.Pattern  # groups: epoch, role
    role_tokens: dict  # role -> token in the file name
    g_rules: tuple  # (file prefix, native prefix); "{i}" stands for a layer index
    d_rules: tuple
    g_signature: str  # the generator keys that identify the format, for messages

    def file_name(self, epoch: str, role: str) -> str:
        token = self.role_tokens[role]
        return {"replicate": f"{epoch}_net_{token}.pth", "ganimation": f"net_epoch_{epoch}_id_{token}.pth",
                "n2me": f"net_epoch_{epoch}_{token}.pth"}[self.name]

    @property
    def pattern(self) -> str:
        return self.file_name("<E>", "G") + " + " + self.file_name("<E>", "D")


_GAN_D_RULES = (("main.", "model."), ("conv1.", "dis_top."), ("conv2.", "aus_top."))

LAYOUTS = {
    "replicate": Layout(
        "replicate", "ULME-GAN / ganimation_replicate", "replicate",
        re.compile(r"^(?P<epoch>\d+)_net_(?P<role>gen|dis)\.pth$"), {"G": "gen", "D": "dis"},
        g_rules=(("model.", "model."), ("color_top.", "color_top."), ("au_top.", "au_top.")),
        d_rules=(("model.", "model."), ("dis_top.", "dis_top."), ("aus_top.", "aus_top.")),
        g_signature="model.*, color_top.0, au_top.0"),
    "ganimation": Layout(
        "ganimation", "original GANimation", "gan",
        re.compile(r"^net_epoch_(?P<epoch>\d+)_id_(?P<role>G|D)\.pth$"), {"G": "G", "D": "D"},
        g_rules=(("main.{i}.main.", "model.{i}.conv_block."), ("main.", "model."), ("img_reg.", "color_top."),
                 ("attetion_reg.", "au_top.")),
        d_rules=_GAN_D_RULES, g_signature="main.*, img_reg.0, attetion_reg.0"),
    "n2me": Layout(
        "n2me", "N2ME neutral-expression GANimation", "gan",
        re.compile(r"^net_epoch_(?P<epoch>\d+)_(?P<role>G|D)\.pth$"), {"G": "G", "D": "D"},
        g_rules=(("main.{i}.main.", "model.{i}.conv_block."), ("main.", "model."), ("img_reg.", "color_top."),
                 ("attention_reg.", "au_top.")),
        d_rules=_GAN_D_RULES, g_signature="main.*, img_reg.0, attention_reg.0"),
}

_ROLE_WORDS = {"G": "generator", "D": "critic (discriminator)"}


# ------------------------------------------------------------------------------------------------ key renaming
def _prefix_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)"))


def translate(key: str, rules: tuple, reverse: bool = False) -> str | None:
    """Rename one key by the first matching prefix rule; None if no rule covers it."""
    for src, dst in rules:
        if reverse:
            src, dst = dst, src
        m = _prefix_regex(src).match(key)
        if m:
            return dst.format(**m.groupdict()) + key[m.end():]
    return None


# ------------------------------------------------------------------------------------------------ reading files
def normalise_format(ckpt_format: str | None) -> str:
    fmt = (ckpt_format or "auto").lower()
    if fmt not in FORMATS:
        raise ValueError(f"--ckpt_format {ckpt_format}: choose from {', '.join(FORMATS)}")
    return fmt


def _tried(fmt: str) -> str:
    return "format detection (auto)" if fmt == "auto" else f"format '{fmt}'"


def _tried_as(layout: Layout, fmt: str) -> str:
    how = "detected" if fmt == "auto" else f"--ckpt_format {fmt}"
    return f"format '{layout.name}' ({layout.title}, {how})"


def read_weights(path: Path, fmt: str = "auto"):
    """The file's object, read without code execution; a clear error for anything that is not plain tensors."""
    try:
        # map_location: N2ME (and any GPU run) saved CUDA tensors, which must open on a CPU-only machine too.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc) or not re.search(r"unsupported global", str(exc), re.I):
            # Random or damaged bytes fail on an opcode: not a checkpoint, and no code in it either.
            raise ValueError(f"{path}: not a PyTorch checkpoint (damaged, or another kind of file: "
                             f"{_unpickler_error(exc)}); tried {_tried(fmt)}") from exc
        what = re.search(r"WeightsUnpickler error: (.*?)(?: Please use|\n|$)", str(exc))
        raise ValueError(
            f"{path}: refused: this file pickles Python objects, not only tensors "
            f"({what.group(1).strip() if what else _first_line(exc)}). Loading it would execute code from the file "
            f"(torch.load with weights_only=False), which this toolkit never does. Convert it in the environment "
            f"that wrote it, where that code exists: load it there and save only the weights, e.g. "
            f"`torch.save(model.state_dict(), 'net_G.pth')` (for a whole pickled model: "
            f"`torch.save(torch.load(FILE, weights_only=False).state_dict(), 'net_G.pth')`), "
            f"then import the new file.") from exc
    except Exception as exc:  # zip/pickle framing errors, truncated files, text files...
        raise ValueError(f"{path}: not a PyTorch checkpoint ({exc.__class__.__name__}: {_first_line(exc)}); "
                         f"tried {_tried(fmt)}") from exc


def _unpickler_error(exc: BaseException) -> str:
    found = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
    return found.group(1).strip()[:200] if found else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]


def as_state_dict(obj, path: Path, fmt: str) -> tuple[dict, list[str]]:
    """A flat name -> tensor dict with any ``module.`` prefix removed, plus notes on what was changed."""
    if isinstance(obj, dict) and {"state", "param_groups"} <= set(obj):
        raise ValueError(f"{path}: an optimizer state (keys state, param_groups), not network weights; give the "
                         f"generator file instead (tried {_tried(fmt)})")
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        detail = f"a dict with keys {_first(list(obj))}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ValueError(f"{path}: not a network state_dict (name -> tensor); it holds {detail} "
                         f"(tried {_tried(fmt)})")
    keys = list(obj)
    if all(k.startswith("module.") for k in keys):
        # nn.DataParallel saves its wrapped network under "module."
        return {k[len("module."):]: v for k, v in obj.items()}, ["removed the 'module.' prefix (nn.DataParallel)"]
    return dict(obj), []


def _first(items: list, n: int = 8) -> str:
    items = list(items)
    return ", ".join(map(str, items[:n])) + (f" ... ({len(items)} in all)" if len(items) > n else "")


# ------------------------------------------------------------------------------------------------ detection
@dataclass
class KeyEvidence:
    family: str | None  # "replicate" | "ganimation" | "n2me" | "gan" (GANimation or N2ME) | "n2me_unet" | None
    role: str | None  # "G" | "D" | None
    keys: str  # the keys that told, for messages


def classify_keys(names) -> KeyEvidence:
    """What the key names alone say about format and role."""
    keys = set(names)

    def has(*prefixes):
        return any(k.startswith(prefixes) for k in keys)

    if has("resblock", "down1.", "up1.") or any(".adain" in k for k in keys):
        return KeyEvidence("n2me_unet", "G", "conv1.0, down1.*, resblock1..6 (AdaIN in resblock4), up1.*, out.*")
    if has("color_top.", "au_top."):
        return KeyEvidence("replicate", "G", "model.*, color_top.0, au_top.0")
    if has("dis_top.", "aus_top."):
        return KeyEvidence("replicate", "D", "model.*, dis_top, aus_top")
    if has("model."):
        role = "G" if any(".conv_block." in k for k in keys) else None
        return KeyEvidence("replicate", role, "model.*")
    if has("attetion_reg."):
        return KeyEvidence("ganimation", "G", "main.*, img_reg.0, attetion_reg.0 (GANimation's spelling)")
    if has("attention_reg."):
        return KeyEvidence("n2me", "G", "main.*, img_reg.0, attention_reg.0")
    if has("img_reg.") or any(re.match(r"main\.\d+\.main\.", k) for k in keys):
        return KeyEvidence("gan", "G", "main.* with residual blocks main.K.main.*")
    if has("conv1.", "conv2."):
        return KeyEvidence("gan", "D", "main.*, conv1, conv2")
    if has("main."):
        return KeyEvidence("gan", None, "main.*")
    return KeyEvidence(None, None, _first(list(names)))


def layout_from_name(path: Path) -> tuple[Layout | None, str | None, str | None]:
    """(layout, role, epoch) from a seed file name, or Nones."""
    for layout in LAYOUTS.values():
        m = layout.file_re.match(path.name)
        if m:
            role = next(r for r, t in layout.role_tokens.items() if t == m.group("role"))
            return layout, role, m.group("epoch")
    return None, None, None


def _compatible(layout: Layout, family: str | None) -> bool:
    return family is None or family == layout.name or family == layout.family


def choose_layout(fmt: str, ev: KeyEvidence, by_name: Layout | None, role: str, path: Path) -> tuple[Layout, str]:
    """The layout to import with and why; the keys decide, the file name breaks ties."""
    if ev.family == "n2me_unet":
        raise ValueError(f"{path}: this is N2ME's micro-expression generator (a U-Net with an AdaIN residual block; "
                         f"keys {ev.keys}). That network arrives with the N2ME pipeline and cannot be loaded yet. "
                         f"N2ME's neutral-expression generator (keys main.*, img_reg.0, attention_reg.0) imports "
                         f"now.")
    if fmt != "auto":
        layout = LAYOUTS[ALIASES.get(fmt, fmt)]
        if not _compatible(layout, ev.family):
            other = LAYOUTS[ev.family].title if ev.family in LAYOUTS else "the GANimation family"
            raise ValueError(f"{path}: tried format '{fmt}' ({layout.title}, keys {layout.g_signature}), but the "
                             f"file's keys ({ev.keys}) are those of {other}: use --ckpt_format auto")
        return layout, f"--ckpt_format {fmt}"
    if ev.family in LAYOUTS:
        layout = LAYOUTS[ev.family]
        reason = f"keys {ev.keys}"
        if by_name is not None and by_name is not layout:
            reason += f"; the file name looks like {by_name.title}'s, the keys decide"
        elif by_name is layout:
            reason += f"; file name {layout.file_name('<E>', role)}"
        return layout, reason
    if ev.family == "gan":
        if by_name is not None and by_name.family == "gan":
            return by_name, f"keys {ev.keys} (GANimation family) and the file name {by_name.file_name('<E>', role)}"
        if role == "D":  # GANimation and N2ME critics are the same network under the same names
            return LAYOUTS["ganimation"], f"keys {ev.keys} (GANimation / N2ME critic)"
        raise ValueError(f"{path}: keys {ev.keys} belong to GANimation or N2ME, and neither the attention head "
                         f"(attetion_reg / attention_reg) nor the file name tells which: pass --ckpt_format")
    raise ValueError(f"{path}: not a recognised checkpoint (tried {_tried(fmt)}): none of the seeds' key names "
                     f"({'; '.join(lay.g_signature for lay in LAYOUTS.values())}); its first keys: {ev.keys}")


# ------------------------------------------------------------------------------------------------ renaming + fixes
@dataclass
class Renamed:
    weights: dict  # native name -> tensor
    source: dict  # native name -> the file's name, for messages
    unmapped: list  # file keys no rule covers
    notes: list = field(default_factory=list)


def rename(sd: dict, rules: tuple) -> Renamed:
    out = Renamed({}, {}, [])
    for key, value in sd.items():
        new = translate(key, rules)
        if new is None:
            out.unmapped.append(key)
        else:
            out.weights[new] = value
            out.source[new] = key
    return out


def drop_legacy_stats(r: Renamed, layout: Layout, path: Path) -> None:
    """Remove InstanceNorm running statistics that PyTorch < 0.4 stored and no longer uses."""
    stats = [k for k in r.weights if k.rsplit(".", 1)[-1] in LEGACY_STATS]
    if not stats:
        return
    if layout.family == "replicate":
        # replicate's InstanceNorm never tracks statistics: these come from a --norm batch (BatchNorm) run.
        raise ValueError(f"{path}: format '{layout.name}': the file has BatchNorm running statistics "
                         f"({_first([r.source[k] for k in stats], 3)}): it was trained with --norm batch, and this "
                         f"toolkit's generator uses InstanceNorm only")
    for k in stats:
        del r.weights[k], r.source[k]
    # PyTorch >= 0.4 removes these too when loading such files; they normalise nothing in training mode.
    r.notes.append(f"dropped {len(stats)} legacy InstanceNorm running_mean/running_var entries (PyTorch < 0.4; "
                   f"the network normalises each image with its own statistics, as in training)")


def undo_dropout_shift(r: Renamed) -> None:
    """replicate's --use_dropout puts Dropout at conv_block.3, moving the second convolution to conv_block.4."""
    moved = 0
    for key in [k for k in r.weights if re.match(r"model\.\d+\.conv_block\.4\.weight$", k)]:
        block = key[: -len("4.weight")]
        if r.weights[key].dim() == 4 and f"{block}3.weight" not in r.weights:
            for suffix in ("weight", "bias"):
                if f"{block}4.{suffix}" in r.weights:
                    r.weights[f"{block}3.{suffix}"] = r.weights.pop(f"{block}4.{suffix}")
                    r.source[f"{block}3.{suffix}"] = r.source.pop(f"{block}4.{suffix}")
            moved += 1
    if moved:
        r.notes.append(f"{moved} residual blocks were trained with --use_dropout: their second convolution moved "
                       f"from conv_block.4 to conv_block.3 (dropout does nothing at test time)")


def reconcile_conv_biases(r: Renamed, expected: dict) -> None:
    """Make trunk convolution biases match the network built (see the module docstring: they are inert)."""
    def is_trunk_conv_bias(key, weights):
        w = weights.get(key[: -len("bias")] + "weight")
        return key.startswith("model.") and key.endswith(".bias") and w is not None and w.dim() == 4

    absent = [k for k in expected if k not in r.weights and is_trunk_conv_bias(k, expected)]
    present = [k for k in r.weights if is_trunk_conv_bias(k, r.weights)]
    if absent and not present:  # a file without any trunk bias (N2ME): zeros are the exact equivalent
        for k in absent:
            r.weights[k] = torch.zeros(expected[k].shape, dtype=r.weights[k[: -len("bias")] + "weight"].dtype)
        r.notes.append(f"the file has no convolution biases: filled {len(absent)} with zeros (exact: each of "
                       f"these convolutions feeds an InstanceNorm, which removes any per-channel constant)")
    extra = [k for k in present if k not in expected]
    if extra and not [k for k in expected if is_trunk_conv_bias(k, expected)]:
        for k in extra:
            del r.weights[k], r.source[k]
        r.notes.append(f"dropped {len(extra)} convolution biases next to affine InstanceNorm (they cancel in the "
                       f"normalisation)")


# ------------------------------------------------------------------------------------------------ inference
def _tensor(r: Renamed, key: str, what: str, layout: Layout, path: Path, fmt: str) -> torch.Tensor:
    t = r.weights.get(key)
    if t is None or t.dim() != 4:
        src = translate(key, layout.g_rules if what == "generator" else layout.d_rules, reverse=True) or key
        raise ValueError(f"{path}: tried {_tried_as(layout, fmt)}: missing key {src}, the "
                         f"{what}'s {'first convolution' if key.endswith('0.weight') else 'AU head'}, which the "
                         f"model arguments are read from; the file's first keys: {_first(r.source.values())}")
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


def _expected_shapes(cls, args: dict) -> dict:
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
    parts = [f"{label} ({len(items)}): {_first(items)}"
             for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
             if items]
    arg_text = ", ".join(f"{k}={v}" for k, v in args.items())
    raise ValueError(f"{path}: tried {_tried_as(layout, fmt)}: the {what} weights do not "
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
            "kind": ckpt.KIND, "format_version": ckpt.FORMAT_VERSION,
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


def _parse_epoch(load_epoch) -> int | None:
    if load_epoch in (None, "latest", "-1", -1):
        return None
    try:
        return int(load_epoch)
    except ValueError:
        raise ValueError(f"--load_epoch must be a number or 'latest', got '{load_epoch}'") from None


def scan_folder(folder: Path) -> dict[str, dict[int, dict[str, Path]]]:
    """layout name -> epoch -> role -> file, for the seed file names found in ``folder``."""
    found: dict = {}
    for p in sorted(folder.iterdir()):
        layout, role, epoch = layout_from_name(p)
        if layout is not None and p.is_file():
            found.setdefault(layout.name, {}).setdefault(int(epoch), {})[role] = p
    return found


def _no_checkpoint_message(folder: Path) -> str:
    names = "; ".join(f"{lay.title}: {lay.pattern}" for lay in LAYOUTS.values())
    hint = ""
    nested = [p for p in sorted(folder.glob("*/*")) + sorted(folder.glob("*")) if p.is_dir() and scan_folder(p)]
    if nested:
        hint = f". Sub-folders that hold checkpoints: {_first([str(p.relative_to(folder)) for p in nested], 5)}"
    return (f"{folder} holds no checkpoints: neither this toolkit's (epoch_NNNN.pth, {ckpt.LATEST}) nor a seed's "
            f"({names}){hint}")


def resolve_checkpoint(source: str | Path, load_epoch="latest", ckpt_format: str = "auto") -> Path:
    """A checkpoint file from a file, or from a run folder (native or foreign) + epoch N / latest.

    For a foreign folder this is the generator file; its critic is found beside it by name.
    """
    fmt = normalise_format(ckpt_format)
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise FileNotFoundError(f"no checkpoint or run folder at {source}")
    has_native = bool(ckpt.epoch_files(source)) or (source / ckpt.LATEST).is_file()
    if fmt == "native" or (fmt == "auto" and has_native):
        return ckpt.resolve(source, load_epoch)  # the native rules, unchanged
    found = scan_folder(source)
    if fmt != "auto":
        found = {k: v for k, v in found.items() if k == ALIASES.get(fmt, fmt)}
    if not found:
        if fmt != "auto":
            layout = LAYOUTS[ALIASES.get(fmt, fmt)]
            raise FileNotFoundError(f"{source}: no {layout.title} files ({layout.pattern}) for --ckpt_format {fmt}")
        raise FileNotFoundError(_no_checkpoint_message(source))
    if len(found) > 1:
        kinds = ", ".join(LAYOUTS[k].title for k in found)
        raise ValueError(f"{source} holds checkpoints of several formats ({kinds}): pass --ckpt_format")
    name, epochs = next(iter(found.items()))
    generators = {e: roles["G"] for e, roles in epochs.items() if "G" in roles}
    if not generators:
        raise FileNotFoundError(f"{source}: only critic files ({LAYOUTS[name].file_name('<E>', 'D')}); test mode "
                                f"and fine-tuning need the generator ({LAYOUTS[name].file_name('<E>', 'G')})")
    epoch = _parse_epoch(load_epoch)
    if epoch is None:
        epoch = max(generators)
    if epoch not in generators:
        raise FileNotFoundError(f"{source} has no {LAYOUTS[name].title} generator for epoch {epoch} "
                                f"(epochs saved: {', '.join(map(str, sorted(generators)))})")
    log.info("%s: %s checkpoint of epoch %d (%s)", source, LAYOUTS[name].title, epoch, generators[epoch].name)
    return generators[epoch]


def _generator_role_check(ev: KeyEvidence, name_role: str | None, path: Path, layout_hint: Layout | None,
                          epoch: str | None, fmt: str) -> None:
    role = ev.role or name_role
    if role == "D":
        companion = ""
        if layout_hint is not None and epoch is not None:
            g = path.with_name(layout_hint.file_name(epoch, "G"))
            companion = f" ({g.name} beside it)" if g.is_file() else f" ({layout_hint.file_name(epoch, 'G')})"
        raise ValueError(f"{path}: holds a critic (discriminator; keys {ev.keys}), not a generator (tried "
                         f"{_tried(fmt)}): give the generator file{companion}")
    if role is None:
        raise ValueError(f"{path}: cannot tell whether this is a generator or a critic (keys {ev.keys}, no head "
                         f"keys, and the file name follows no seed's naming; tried {_tried(fmt)})")


def import_checkpoint(source: str | Path, ckpt_format: str = "auto", load_epoch="latest",
                      need_critic: bool = False, final_size: int | None = None, _raw=None) -> ImportedCheckpoint:
    """Read a foreign generator (+ its critic when found beside it) into native weights and model arguments."""
    fmt = normalise_format(ckpt_format)
    if fmt == "native":
        raise ValueError(f"{source}: --ckpt_format native loads this toolkit's checkpoints; nothing to import")
    g_path = resolve_checkpoint(source, load_epoch, fmt)
    raw = read_weights(g_path, fmt) if _raw is None else _raw
    if ckpt.is_native(raw):
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
    expected_g = _expected_shapes(Generator, g_args)
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
    model_args = {"name": "ganimation", "aus_schema": schema.key, "generator": g_args, "discriminator": d_args}
    return ImportedCheckpoint(label, reason, g_path, d_path if d_weights is not None else None,
                              int(name_epoch) if name_epoch is not None else 0, model_args,
                              g.weights, d_weights, inferred, notes)


def _import_critic(d_path: Path, layout: Layout, fmt: str) -> tuple[Renamed, dict, list[str]]:
    sd, notes = as_state_dict(read_weights(d_path, fmt), d_path, fmt)
    ev = classify_keys(sd)
    if ev.role == "G" or ev.family == "n2me_unet":
        raise ValueError(f"{d_path}: holds a generator (keys {ev.keys}), not the critic its file name says "
                         f"(tried {_tried_as(layout, fmt)})")
    if not _compatible(layout, ev.family):
        raise ValueError(f"{d_path}: tried format '{layout.name}' for the critic, but its keys ({ev.keys}) are "
                         f"those of {LAYOUTS[ev.family].title if ev.family in LAYOUTS else 'another format'}")
    d = rename(sd, layout.d_rules)
    d.notes[:0] = [f"critic: {n}" for n in notes]
    stats = [k for k in d.weights if k.rsplit(".", 1)[-1] in LEGACY_STATS]
    if stats:
        raise ValueError(f"{d_path}: the critic has normalisation statistics ({_first(stats, 3)}); the seeds' "
                         f"critics have no normalisation layers")
    args, inferred = infer_critic(d, layout, d_path, fmt)
    check_fits(d, _expected_shapes(Discriminator, args), layout.d_rules, "critic", args, layout, d_path, fmt)
    return d, args, inferred


def _schema(aus_nc: int, path: Path):
    try:
        return schema_for_size(aus_nc)
    except ValueError as exc:
        raise ValueError(f"{path}: the generator takes {aus_nc} AU values (first convolution: {aus_nc + 3} input "
                         f"channels = 3 RGB + AUs): {exc}") from None


# ------------------------------------------------------------------------------------------------ loading hooks
def _native_by_name(path: Path) -> bool:
    return path.name == ckpt.LATEST or bool(re.match(r"^epoch_\d+\.pth$", path.name))


def load_any(path: str | Path, ckpt_format: str = "auto") -> dict:
    """A checkpoint as ``ckpt.load`` returns it: native files unchanged and strict, foreign ones imported."""
    path = Path(path)
    fmt = normalise_format(ckpt_format)
    if fmt == "native" or (fmt == "auto" and _native_by_name(path)):
        return ckpt.load(path)
    raw = read_weights(path, fmt)
    if ckpt.is_native(raw):
        return ckpt.check_native(raw, path)
    imported = import_checkpoint(path, fmt, _raw=raw)
    for line in imported.describe():
        log.info("import %s", line)
    return imported.native_state()


def check_format(path: Path, ckpt_format: str = "auto") -> None:
    """Fail early, naming the format, when an explicit --ckpt_format does not fit the file."""
    fmt = normalise_format(ckpt_format)
    if fmt == "native":
        ckpt.load(path)
    elif fmt != "auto":
        import_checkpoint(path, fmt)


def fine_tuning_start(path: Path, ckpt_format: str = "auto") -> tuple[Path, dict]:
    """The native checkpoint file fine-tuning starts from, and its model arguments.

    Foreign weights (generator + critic) are written to a temporary native checkpoint first, because the trainer
    loads its starting point with the native loader.
    """
    path = Path(path)
    fmt = normalise_format(ckpt_format)
    raw = None
    if fmt == "native" or (fmt == "auto" and _native_by_name(path)):
        state = ckpt.load(path)
    else:
        raw = read_weights(path, fmt)
        state = ckpt.check_native(raw, path) if ckpt.is_native(raw) else None
    if state is not None:
        if "D" not in state:
            src = state.get("imported_from", {}).get("generator")
            raise ValueError(f"{path}: holds no critic (D) weights{f' (imported from {src} alone)' if src else ''}; "
                             f"fine-tuning trains the generator against its critic, so it needs both: import the "
                             f"run folder that has the critic file too")
        return path, state["model"]
    imported = import_checkpoint(path, fmt, need_critic=True, _raw=raw)
    for line in imported.describe():
        log.info("import %s", line)
    folder = Path(tempfile.mkdtemp(prefix="megan-import-"))
    atexit.register(shutil.rmtree, folder, True)
    native = folder / f"imported_{imported.format}_epoch{imported.epoch}.pth"
    ckpt.save_atomic(imported.native_state(), native)
    log.info("fine-tuning starts from %s (%s) and %s", imported.generator_file, imported.format, imported.critic_file)
    return native, imported.model_args


# ------------------------------------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m solvers.importers",
                                description="Import ULME-GAN / ganimation_replicate / GANimation / N2ME checkpoints")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("convert", "write the weights as a native checkpoint"),
                       ("inspect", "print the detected format and the inferred model arguments")):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("source", help="a generator file, or the run folder holding it (and its critic)")
        s.add_argument("--ckpt_format", default="auto", choices=[f for f in FORMATS if f != "native"],
                       help="auto: detect from key and file names")
        s.add_argument("--epoch", default="latest", help="N or latest, when SOURCE is a folder")
        s.add_argument("--final_size", type=int, default=None,
                       help="image size for a generator without its critic (default 128; the critic tells it)")
        if name == "convert":
            s.add_argument("--out", required=True, help="native checkpoint to write (.pth)")
            s.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        imported = import_checkpoint(args.source, args.ckpt_format, args.epoch, final_size=args.final_size)
        print("\n".join(imported.describe()))
        if args.command == "convert":
            out = Path(args.out)
            if out.exists() and not args.force:
                raise FileExistsError(f"{out} exists: pass --force to overwrite it")
            out.parent.mkdir(parents=True, exist_ok=True)
            ckpt.save_atomic(imported.native_state(), out)
            print(f"wrote {out} (native checkpoint: python main.py --mode test --ckpt {out} ...)")
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
