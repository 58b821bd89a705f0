"""``python -m checkpoints inspect SOURCE`` / ``convert SOURCE --out native.pth``: a seed's checkpoint (ULME-GAN,
ganimation_replicate, GANimation, N2ME) described, or written as this toolkit's native checkpoint."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from checkpoints import native
from checkpoints.importers import import_checkpoint
from checkpoints.seed_formats import FORMATS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m checkpoints",
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
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        imported = import_checkpoint(args.source, args.ckpt_format, args.epoch, final_size=args.final_size)
        print("\n".join(imported.describe()))
        if args.command == "convert":
            out = Path(args.out)
            if out.exists() and not args.force:
                raise FileExistsError(f"{out} exists: pass --force to overwrite it")
            out.parent.mkdir(parents=True, exist_ok=True)
            native.save_atomic(imported.native_state(), out)
            print(f"wrote {out} (native checkpoint: python main.py --mode test --ckpt {out} ...)")
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
