"""Calibrate a generator's AU response once (models/au_response.py explains what and why).

    python -m tools.calibrate_response --ckpt pretrained/ganimation128_gpu15.pth --faces FACES
    (the bundled model's FACES: pretrained/calibration_faces.txt)
    python -m tools.calibrate_response --ckpt MODEL --from_grid SWEEP.json  # reuse a `tools.au_grid --measure` sweep

Writes ``<model>.calibration.json`` beside the checkpoint (test mode finds it there) and ``<model>.calibration.png``
(the response curves).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from catalog.au_schema import OPENFACE_AUS
from checkpoints import BUNDLED_CHECKPOINT
from models.au_response import plot_curves, save_response
from tools import au_grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.calibrate_response", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, default=BUNDLED_CHECKPOINT)
    p.add_argument("--faces", default=None, help="held-out faces: as tools.au_grid --faces")
    p.add_argument("--rows", type=int, default=10, help="faces used")
    p.add_argument("--levels", default="0,1,2,3,4,5")
    p.add_argument("--grid", type=Path, default=None, help="sweep grid PNG (default /tmp/<model>_sweep.png)")
    p.add_argument("--from_grid", type=Path, default=None,
                   help="reuse the JSON of an earlier `tools.au_grid --measure` sweep over every AU")
    args = p.parse_args(argv)
    if not args.from_grid and not args.faces:
        p.error("give --faces (held-out faces to sweep) or --from_grid (an earlier sweep)")
    if args.from_grid:
        record = json.loads(args.from_grid.read_text())
    else:
        grid = args.grid or Path("/tmp") / f"{args.ckpt.stem}_sweep.png"
        record = au_grid.au_grid(args.ckpt, args.faces, grid, aus=OPENFACE_AUS,
                                 levels=au_grid._floats(args.levels), rows=args.rows, cell=64, measure=True)
    command = "python -m tools.calibrate_response " + " ".join(argv or sys.argv[1:])
    out = save_response(record, OPENFACE_AUS, args.ckpt, command)
    plot_curves(out, out.with_suffix(".png"))
    calibrated = len(json.loads(out.read_text())["curves"])
    print(f"{out}: {calibrated} AUs calibrated; curves plotted in {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
