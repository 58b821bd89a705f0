"""The seed systems' checkpoint files (ULME-GAN, ganimation_replicate, original GANimation, N2ME): their file and
key names, and how checkpoints/importers.py reads them into this toolkit's networks without running their code.

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

Reading these files into native checkpoints: checkpoints/importers.py (also a command: ``python -m checkpoints``).
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

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


def tried(fmt: str) -> str:
    return "format detection (auto)" if fmt == "auto" else f"format '{fmt}'"


def tried_as(layout: Layout, fmt: str) -> str:
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
                             f"{_unpickler_error(exc)}); tried {tried(fmt)}") from exc
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
                         f"tried {tried(fmt)}") from exc


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
                         f"generator file instead (tried {tried(fmt)})")
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        detail = f"a dict with keys {first_few(list(obj))}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ValueError(f"{path}: not a network state_dict (name -> tensor); it holds {detail} "
                         f"(tried {tried(fmt)})")
    keys = list(obj)
    if all(k.startswith("module.") for k in keys):
        # nn.DataParallel saves its wrapped network under "module."
        return {k[len("module."):]: v for k, v in obj.items()}, ["removed the 'module.' prefix (nn.DataParallel)"]
    return dict(obj), []


def first_few(items: list, n: int = 8) -> str:
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
    return KeyEvidence(None, None, first_few(list(names)))


def layout_from_name(path: Path) -> tuple[Layout | None, str | None, str | None]:
    """(layout, role, epoch) from a seed file name, or Nones."""
    for layout in LAYOUTS.values():
        m = layout.file_re.match(path.name)
        if m:
            role = next(r for r, t in layout.role_tokens.items() if t == m.group("role"))
            return layout, role, m.group("epoch")
    return None, None, None


def compatible(layout: Layout, family: str | None) -> bool:
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
        if not compatible(layout, ev.family):
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
    raise ValueError(f"{path}: not a recognised checkpoint (tried {tried(fmt)}): none of the seeds' key names "
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
                         f"({first_few([r.source[k] for k in stats], 3)}): it was trained with --norm batch, and this "
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
