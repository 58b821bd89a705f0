"""Motion transfer's cost on the CPU: what an hour of synthesis buys.

    python -m tools.bench_motion [--size 256] [--frames 200] [--threads 2]
    python -m tools.bench_motion --megc_root ../shared/data/megc2021 --out /tmp/bench_motion   # + the batches

Prints, on matplotlib's sample face (every install has it):
- the per-template set-up (landmarks, mesh, barycentric matrix), once per template;
- the warp per frame at ``--size`` (sparse product, field inversion, remap), without and with a texture change;
- MediaPipe's landmarks and the shading ratio (``--texture clip``) per driving frame (once per clip, shared by all
  its templates);
- the bundled generator per frame (``--texture generator``'s cost: one generator frame per output frame).
With ``--megc_root``: the whole ``for_megc2021.py`` batch (``--re_code --linear_fitting --no_video``) run three
times in this process's machine state, one after the other: generator only (``--motion none``), warp only
(``--texture none``) and the default (warp + the clip's shading), wall time each.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tools.export_onnx import benchmark  # median of timed calls after a warm-up


def _face_photo(size: int) -> np.ndarray:
    import matplotlib.cbook as cbook

    from media.images import load_rgb

    return load_rgb(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), size)


def warp_figures(size: int, frames: int) -> dict[str, float]:
    from motion.transfer import TemplateMotion, shared_landmarker

    face = _face_photo(size)
    shared_landmarker()  # the graph's creation is not the template's cost
    start = time.perf_counter()
    template = TemplateMotion.from_image(face, "sample face")
    setup = time.perf_counter() - start
    rng = np.random.default_rng(0)
    moves = rng.normal(scale=1.0, size=(frames, 478, 2))
    texture = rng.normal(scale=3.0, size=(size, size, 3)).astype(np.float32)
    warp_only = benchmark(lambda: [template.render(m) for m in moves], 3) / frames
    with_texture = benchmark(lambda: [template.render(m, texture) for m in moves], 3) / frames
    images = [face] * 20
    landmarks = benchmark(lambda: [shared_landmarker().detect(img) for img in images], 3) / len(images)
    shading = shading_ms(face, template.landmarks)
    return {"template_setup_ms": setup * 1e3, "warp_ms": warp_only * 1e3, "warp_texture_ms": with_texture * 1e3,
            "landmarks_ms": landmarks * 1e3, "shading_ms": shading}


def shading_ms(face: np.ndarray, landmarks: np.ndarray, frames: int = 40) -> float:
    """The clip's shading ratio (--texture clip) per source frame, on a clip of slightly moved copies of the face."""
    from motion.dense import shading_ratio

    rng = np.random.default_rng(1)
    moves = rng.normal(scale=0.5, size=(frames, 1, 3)) * np.array([1.0, 1.0, 0.0])
    clip_landmarks = landmarks[None] + moves
    images = [face] * frames
    return benchmark(lambda: shading_ratio(images, clip_landmarks, 200.0), 3) / frames * 1e3


def generator_ms(threads: int) -> float:
    import torch

    from checkpoints import BUNDLED_CHECKPOINT
    from solvers.tester import SequenceGenerator

    torch.set_num_threads(threads)
    model = SequenceGenerator(BUNDLED_CHECKPOINT, torch.device("cpu"), batch_size=25)
    template = torch.zeros(3, model.image_size, model.image_size)
    aus = np.zeros((50, model.schema.n))
    return benchmark(lambda: model.generate(template, aus), 3) / len(aus) * 1e3


def batch_seconds(megc_root: Path, out: Path, flags: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "for_megc2021.py", "--megc_root", str(megc_root), "--re_code",
                    "--linear_fitting", "--no_video", "--no_progress", "--results_dir", str(out), *flags],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench_motion", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="output size in pixels")
    p.add_argument("--frames", type=int, default=200, help="frames per timing")
    p.add_argument("--threads", type=int, default=2, help="torch threads for the generator")
    p.add_argument("--megc_root", type=Path, default=None, help="also time the 12-pair batch three ways")
    p.add_argument("--out", type=Path, default=Path("results/bench_motion"), help="where the batches write")
    args = p.parse_args(argv)
    figures = warp_figures(args.size, args.frames)
    figures["generator_ms"] = generator_ms(args.threads)
    for name, value in figures.items():
        print(f"{name:>20}: {value:8.2f}")
    per_frame = {"warp only (--texture none)": figures["warp_ms"],
                 "default, warp + the clip's shading (--texture clip)": figures["warp_texture_ms"],
                 "warp + the generator's change (--texture generator)":
                     figures["warp_texture_ms"] + figures["generator_ms"]}
    for label, ms in per_frame.items():
        print(f"frames/s at {args.size} px, {label}: {1e3 / ms:.1f}")
    print(f"per driving clip, once for all its templates: landmarks {figures['landmarks_ms']:.1f} ms a source frame, "
          f"the shading ratio {figures['shading_ms']:.1f} ms a source frame")
    if args.megc_root is not None:
        runs = {"generator only (--motion none)": ["--motion", "none"], "warp only (--texture none)":
                ["--texture", "none"], "default (warp + the clip's shading)": []}
        for k, (label, flags) in enumerate(runs.items()):
            seconds = batch_seconds(args.megc_root, args.out / f"batch{k}", flags)
            print(f"for_megc2021.py, 12 pairs, {label}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
