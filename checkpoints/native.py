"""This toolkit's checkpoint format: one file of tensors and plain types, written atomically, loadable with
weights_only=True. Writing (``save_atomic``), naming, finding in a run folder and checking; reading for every
caller goes through ``checkpoints.read`` (checkpoints/reading.py).

Files in a run folder:
- ``epoch_NNNN.pth`` at the end of every ``--save_epoch_freq``-th epoch (and the last one);
- ``latest.pth`` inside an epoch (``--save_latest_freq``, ``--max_steps``, Ctrl-C, a failing image). It is removed
  when an epoch checkpoint is written, so whenever it exists it is the newest state.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

FORMAT_VERSION = 1
KIND = "megan-checkpoint"
LATEST = "latest.pth"
_EPOCH_RE = re.compile(r"^epoch_(\d+)\.pth$")

# The generator shipped in the repository (pretrained/MODEL_CARD.md): test mode's model when none is named.
PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
BUNDLED_CHECKPOINT = PRETRAINED / "ganimation128_gpu15.pth"  # 128 px, trained on one GPU (docs/bundled_model.md)
# The 64 px CPU stand-in it replaced: kept only because tests need a tiny real model that runs in a second.
SMALL_CHECKPOINT = PRETRAINED / "ganimation_cpu_small.pth"


def epoch_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / f"epoch_{epoch:04d}.pth"


def epoch_files(run_dir: Path) -> dict[int, Path]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return {}
    out = {}
    for p in run_dir.iterdir():
        m = _EPOCH_RE.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def save_atomic(state: dict, path: Path) -> None:
    """Write to a temporary name in the same folder, then rename: a crash never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError from its zip writer
        raise OSError(f"{path}: could not write the checkpoint ({str(exc).strip().splitlines()[-1][:160]}); is the "
                      f"disk full or read-only? The previous checkpoint, if any, is intact") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def resolve_run(source: Path, load_epoch: str | int | None = "latest") -> Path:
    """This toolkit's checkpoint file from a file path, or a run folder + ``N`` / ``latest``."""
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise FileNotFoundError(f"no checkpoint or run folder at {source}")
    epochs = epoch_files(source)
    if load_epoch in (None, "latest", "-1", -1):
        if (source / LATEST).is_file():
            return source / LATEST
        if epochs:
            return epochs[max(epochs)]
        started = (source / "options.json").is_file()  # a run that stopped before its first save
        raise FileNotFoundError(f"{source} holds no checkpoints (epoch_NNNN.pth or {LATEST})"
                                + (": the run stopped before its first save; start it again with the same --name "
                                   "(without --resume), which reuses the folder" if started else ""))
    epoch = parse_epoch(load_epoch)
    if epoch not in epochs:
        have = ", ".join(str(e) for e in epochs) or "none"
        raise FileNotFoundError(f"{source} has no checkpoint for epoch {epoch} (epochs saved: {have})")
    return epochs[epoch]


def parse_epoch(load_epoch) -> int | None:
    """``--load_epoch``: a number, or None for the newest ("latest", -1)."""
    if load_epoch in (None, "latest", "-1", -1):
        return None
    try:
        return int(load_epoch)
    except ValueError:
        raise ValueError(f"--load_epoch must be a number or 'latest', got '{load_epoch}'") from None


def native_by_name(path: Path) -> bool:
    """The file names this toolkit writes (epoch_NNNN.pth, latest.pth)."""
    return path.name == LATEST or bool(_EPOCH_RE.match(path.name))


def require_critic(state: dict, path: str | Path) -> dict:
    """Fine-tuning trains the generator against its critic: a generator-only checkpoint cannot start it."""
    if "D" not in state:
        src = state.get("imported_from", {}).get("generator")
        raise ValueError(f"{path}: holds no critic (D) weights{f' (imported from {src} alone)' if src else ''}; "
                         f"fine-tuning trains the generator against its critic, so it needs both: import the "
                         f"run folder that has the critic file too")
    return state


def read_native(path: Path, map_location="cpu") -> dict:
    """Read one of this toolkit's files (the only ``torch.load`` of a native checkpoint) and check it."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint of this toolkit ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0][:200]}). Foreign weights need an importer.") from exc
    return check_native(state, path)


def is_native(state) -> bool:
    return isinstance(state, dict) and state.get("kind") == KIND


def check_native(state, path: Path) -> dict:
    """The checks applied to what was read, whichever reader read it."""
    if not is_native(state):
        raise ValueError(f"{path}: not a checkpoint of this toolkit (no '{KIND}' marker); seed-format weights "
                         f"(ULME-GAN, GANimation, N2ME) need an importer: --ckpt_format auto, or "
                         f"python -m checkpoints convert")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state['format_version']} is newer than this toolkit "
                         f"({FORMAT_VERSION}); update the toolkit")
    missing = [key for key in ("model", "G", "progress") if not isinstance(state.get(key), dict)]
    if missing:
        raise ValueError(f"{path}: damaged checkpoint: it has this toolkit's marker but no {', '.join(missing)}; "
                         f"use another checkpoint of the run (epoch_NNNN.pth)")
    return state


def check_resumable(state: dict, path: Path) -> dict:
    """--resume continues a run exactly, so it needs what only a training run saves (imported weights lack it)."""
    missing = [k for k in ("optim_G", "optim_D", "rng", "options") if not state.get(k)]
    if missing:
        origin = state.get("imported_from", {}).get("format")
        raise ValueError(f"{path}: cannot be resumed: it has no {', '.join(missing)}"
                         f"{f' (weights imported from {origin})' if origin else ''}. Fine-tune from it instead: "
                         f"--ckpt_dir {Path(path).parent} --load_epoch {state.get('progress', {}).get('epoch', 'N')}")
    return state


def load_state_strict(module: torch.nn.Module, state_dict: dict, what: str, path: Path) -> None:
    """Strict load with a readable list of what does not match (missing, unexpected, wrong shape)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                parts.append(f"{label} ({len(items)}): " + "; ".join(items[:8]) + (" ..." if len(items) > 8 else ""))
        raise ValueError(f"{path}: {what} weights do not fit this architecture:\n  " + "\n  ".join(parts)
                         + "\nThe checkpoint was trained with other model options (see its 'model' entry).")
    module.load_state_dict(state_dict, strict=True)


def prune_epochs(run_dir: Path, keep_last: int) -> None:
    if keep_last <= 0:
        return
    epochs = epoch_files(run_dir)
    for epoch in list(epochs)[:-keep_last]:
        epochs[epoch].unlink()
