"""The one-command demo: the bundled generator animates a face photo that every install has.

    python -m tools.demo [--out results/demo] [--ckpt FILE] [--template IMAGE] [--output_size 256] [--fps 30]

The template is ``grace_hopper.jpg`` from matplotlib's sample data (installed with matplotlib, a requirement), or
``--template``. The built-in front end aligns it and measures its AUs; the two bundled AU matrices
(``examples/au_matrices/positive.csv`` and ``surprise.csv``) then drive it through test mode's own sequence
writer (``solvers.tester.generate_sequence``), relative to the face's own AUs (``--au_mode relative``: frame 0
is the photo's expression, the matrix is added on top). OUT receives:

    positive/, surprise/   test mode's result folders: frames/NNN.png, target.mp4, compare.mp4 (photo | result),
                           target.gif, au_curves.png, aus_driven.csv, run.json
    template_aligned.png   the aligned template (the generator sees it at its own resolution)
    overview.png           side by side: template | model input | positive apex | surprise apex
    demo.json              inputs, template AUs, timings

Re-running replaces the folders of an earlier demo in OUT (recognised by its demo.json); anything else in OUT is
never overwritten.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from solvers.motion_path import MotionSettings

ROOT = Path(__file__).resolve().parents[1]
AU_MATRICES = ROOT / "examples" / "au_matrices"
DRIVERS = ("positive", "surprise")

log = logging.getLogger(__name__)


def sample_face() -> Path:
    """matplotlib's Grace Hopper photo: a frontal face photo present in every install of this toolkit."""
    import matplotlib
    from matplotlib import cbook

    try:
        path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    except (OSError, ValueError):
        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib's sample photo is missing ({path}): pass --template IMAGE")
    return path


def _label(img: Image.Image, text: str) -> Image.Image:
    band = 18
    out = Image.new("RGB", (img.width, img.height + band), "white")
    out.paste(img, (0, band))
    ImageDraw.Draw(out).text((4, 3), text, fill=(0, 0, 0))
    return out


def overview(template: np.ndarray, model_input: np.ndarray, model_size: int,
             apexes: dict[str, np.ndarray]) -> Image.Image:
    """Aligned photo | what the generator sees (its own resolution, enlarged) | the apex of each sequence."""
    tiles = [_label(Image.fromarray(template), "template (aligned)"),
             _label(Image.fromarray(model_input), f"model input ({model_size} px)")]
    tiles += [_label(Image.fromarray(frame), f"{name} apex") for name, frame in apexes.items()]
    gap = 4
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + gap
    return sheet


def _clear_earlier_demo(out: Path) -> None:
    if not (out / "demo.json").is_file():
        return
    for name in (*DRIVERS, "template_aligned.png", "overview.png", "demo.json"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def run_demo(out: Path, *, ckpt: Path | None = None, template: Path | None = None, output_size: int = 256,
             fps: float = 30.0, gpu_ids: str = "-1", videos: bool = True,
             motion: MotionSettings | None = None) -> dict:
    """The demo's two sequences; ``motion`` defaults to motion transfer from the AU matrices (docs/motion.md)."""
    from checkpoints import BUNDLED_CHECKPOINT
    from data.sequences import read_au_matrix, template_from_image
    from media.frames import resize_frames
    from solvers import pair_input, tester
    from solvers.distributed import select_device

    motion = motion if motion is not None else MotionSettings(motion="aus", texture="none")

    start = time.perf_counter()
    ckpt = Path(ckpt) if ckpt else BUNDLED_CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt} (the bundled model ships in pretrained/)")
    template = Path(template) if template else sample_face()
    model = tester.SequenceGenerator(ckpt, select_device(gpu_ids, 0), batch_size=32)
    loaded = time.perf_counter()
    with pair_input.measurement_backend("builtin", None, None) as backend:
        face = template_from_image(template, model.schema, backend.front_end)
    measured = time.perf_counter()

    out.mkdir(parents=True, exist_ok=True)
    _clear_earlier_demo(out)
    traj = tester.TrajectorySettings(mode="1v1", au_mode="relative")
    settings = tester.SequenceOutput(output_size=output_size, fps=fps, videos=videos)
    results, apexes = {}, {}
    for name in DRIVERS:
        clip = read_au_matrix(AU_MATRICES / f"{name}.csv", model.schema)
        result = tester.generate_sequence(model, clip, face, tester.unique_folder(out / name), traj, settings,
                                          motion=motion)
        frames = sorted((result.out_dir / "frames").glob("*.png"))
        apexes[name] = np.asarray(Image.open(frames[result.apex]).convert("RGB"))
        results[name] = {"folder": str(result.out_dir), "frames": result.frames, "apex": result.apex,
                         "fps": result.fps, "generation_seconds": round(result.seconds, 3),
                         "files": result.files}
    aligned = tester.template_pixels(face, output_size)
    Image.fromarray(aligned).save(out / "template_aligned.png")
    seen = resize_frames(tester.template_pixels(face, model.image_size)[None], output_size)[0]
    overview(aligned, seen, model.image_size, apexes).save(out / "overview.png")
    record = {
        "checkpoint": str(ckpt), "template": str(template),
        "template_aus": {n: round(float(v), 3) for n, v in zip(model.schema.names, face.aus)},
        "au_mode": "relative", "motion": asdict(motion), "output_size": output_size, "device": str(model.device),
        "sequences": results,
        "seconds": {"load_model": round(loaded - start, 3), "align_and_measure": round(measured - loaded, 3),
                    "total": round(time.perf_counter() - start, 3)},
    }
    (out / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder")
    p.add_argument("--ckpt", type=Path, default=None, help="generator checkpoint (default: the bundled model)")
    p.add_argument("--template", type=Path, default=None, help="face photo (default: matplotlib's Grace Hopper)")
    p.add_argument("--output_size", type=int, default=256, choices=(128, 256))
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--gpu_ids", default="-1", help="-1: CPU (default); 0: the first GPU")
    p.add_argument("--no_video", action="store_true", help="frames, curves and stills only")
    p.add_argument("--motion", default="aus", choices=("aus", "none"),
                   help="aus (default): the AU matrices move the face through the per-AU motion primitives; none: "
                        "the generator alone (the seeds' way)")
    p.add_argument("--texture", default="none", choices=("generator", "none"),
                   help="with --motion aus: none (default: measured better, docs/motion.md) or the generator's "
                        "AU-driven change on top")
    args = p.parse_args(argv)
    from monitor.logs import setup_logging

    setup_logging(None, True)
    try:
        record = run_demo(args.out, ckpt=args.ckpt, template=args.template, output_size=args.output_size,
                          fps=args.fps, gpu_ids=args.gpu_ids, videos=not args.no_video,
                          motion=MotionSettings(motion=args.motion, texture=args.texture))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, seq in record["sequences"].items():
        print(f"{name}: {seq['frames']} frames (apex {seq['apex']}) -> {seq['folder']}")
    print(f"overview: {args.out / 'overview.png'}; {record['seconds']['total']:.1f} s in all on {record['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
