"""Write a generator-only checkpoint for shipping: no critic, optimiser, RNG or options; optionally fp16 weights.

    python -m tools.export_generator RUN_OR_CKPT --out FILE [--half] [--load_epoch N|latest] [--ckpt_format auto]

RUN_OR_CKPT is a run folder (its latest checkpoint, or ``--load_epoch N``), a checkpoint file, or a seed's
generator file (imported as in test mode). FILE holds the trainer's layout (``kind``, ``format_version``,
``progress``, ``model``, ``G``) plus ``exported_from`` (source file, its SHA-256, precision), so
``checkpoints.read``, ``--mode test --ckpt FILE`` and ``SequenceGenerator`` read it like any native
checkpoint. With ``--half`` the floating-point weights are stored as fp16 (half the size); they are widened to
fp32 when loaded, so inference runs in fp32 everywhere (CPU included). The command prints the largest difference
between the fp32 and the fp16 generator on a fixed input, in pixel levels of 0..255.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch

from checkpoints import native, read
from checkpoints.seed_formats import FORMATS
from models.model_registry import build_generator

EXPORT_KEYS = ("kind", "format_version", "progress", "model", "G")


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def generator_state(source: Path, load_epoch="latest", ckpt_format: str = "auto") -> tuple[Path, dict]:
    """The checkpoint file behind ``source`` and its state as test mode reads it (seeds imported)."""
    checkpoint = read(Path(source), load_epoch, ckpt_format)
    return checkpoint.path, checkpoint.state


def export_state(state: dict, source: Path, half: bool = False) -> dict:
    """The generator-only checkpoint dict of a loaded state."""
    weights = {k: (v.half() if half and v.is_floating_point() else v).detach().clone().contiguous()
               for k, v in state["G"].items()}
    progress = {k: int(state["progress"].get(k, 0)) for k in ("epoch", "batch", "step", "images")}
    out = {"kind": native.KIND, "format_version": native.FORMAT_VERSION, "progress": progress,
           "model": state["model"], "G": weights,
           "exported_from": {"file": source.name, "sha256": _sha256(source),
                             "precision": "float16" if half else "float32"}}
    if "imported_from" in state:
        out["exported_from"]["imported_from"] = state["imported_from"].get("format")
    return out


def fixed_probe(model_args: dict, n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic input batch for comparing two generators: smooth random images, spread-out AUs."""
    g = torch.Generator().manual_seed(seed)
    size = model_args["discriminator"]["final_size"]
    n_aus = model_args["generator"]["aus_nc"]
    low = torch.rand(n, 3, max(4, size // 8), max(4, size // 8), generator=g) * 2 - 1
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    aus = torch.rand(n, n_aus, generator=g)  # the network's 0..1 scale (raw / 5)
    return images, aus


@torch.inference_mode()
def max_pixel_difference(model_args: dict, weights_a: dict, weights_b: dict,
                         images: torch.Tensor | None = None, aus: torch.Tensor | None = None) -> float:
    """Largest |a - b| over the generated images, in 0..255 levels, both run in fp32 on the CPU."""
    if images is None or aus is None:
        images, aus = fixed_probe(model_args)
    outs = []
    for weights in (weights_a, weights_b):
        g = build_generator(model_args)
        g.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, strict=True)
        g.eval()
        outs.append(g(images, aus)[0].clamp(-1, 1))
    return float((outs[0] - outs[1]).abs().max() * 127.5)


def export_generator(source: Path, out: Path, *, half: bool = False, load_epoch="latest",
                     ckpt_format: str = "auto") -> dict:
    """Export and check: the written file loads strictly; returns sizes and the fp16 difference."""
    path, state = generator_state(source, load_epoch, ckpt_format)
    exported = export_state(state, path, half)
    out.parent.mkdir(parents=True, exist_ok=True)
    native.save_atomic(exported, out)
    reloaded = read(out).state
    generator = build_generator(reloaded["model"])
    native.load_state_strict(generator, reloaded["G"], "generator", out)
    diff = max_pixel_difference(state["model"], state["G"], reloaded["G"])
    return {"source": str(path), "out": str(out), "bytes": out.stat().st_size,
            "source_bytes": path.stat().st_size, "precision": exported["exported_from"]["precision"],
            "parameters": sum(v.numel() for v in exported["G"].values()),
            "max_pixel_difference": diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.export_generator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="run folder, checkpoint file, or a seed's generator file")
    p.add_argument("--out", required=True, type=Path, help="generator-only checkpoint to write")
    p.add_argument("--half", action="store_true", help="store the weights as fp16 (loaded back as fp32)")
    p.add_argument("--load_epoch", default="latest", help="N or latest, when SOURCE is a run folder")
    p.add_argument("--ckpt_format", default="auto", choices=FORMATS)
    args = p.parse_args(argv)
    try:
        info = export_generator(args.source, args.out, half=args.half, load_epoch=args.load_epoch,
                      ckpt_format=args.ckpt_format)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{info['source']} -> {info['out']}: {info['parameters']:,} generator parameters, {info['precision']}, "
          f"{info['bytes'] / 1e6:.2f} MB (source {info['source_bytes'] / 1e6:.2f} MB); largest output difference "
          f"to the source generator on a fixed probe: {info['max_pixel_difference']:.3f} of 255 levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
