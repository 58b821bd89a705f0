"""Peak memory of test mode against the length of the AU matrix, to show it is flat in the number of rows.

    python -m tools.measure_test_memory                      # 2,000 and 10,000 rows at 256 px
    python -m tools.measure_test_memory --rows 500 2000 --output_size 128 --ckpt RUN/latest.pth
    python -m tools.measure_test_memory --rows 2000 --root /tmp/old_checkout   # the same, for another checkout

Each measurement runs ``main.py --mode test --aus_matrix`` (videos, GIF and frames, as a user would) in a fresh
Python process on the CPU and reports that process's peak resident memory (``ru_maxrss``). The ffmpeg encoders
are separate processes with fixed buffers (x264's look-ahead); their own ``ru_maxrss`` is not reported because a
forked child's high-water mark includes the parent's pages from before ``exec``. The model is the small bundled
CPU generator (``pretrained/ganimation_cpu_small.pth``, 64 px) unless ``--ckpt`` names another: what grows with the
sequence is the frames, not the network. The AU matrix is a smooth synthetic onset-apex-offset curve repeated to the
requested length; the template is a drawn synthetic face (``data.synthetic``) unless ``--template`` names an image.
Everything is written to a temporary folder that is deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Runs test mode in this very process, then reports its own peak memory.
CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from main import main
code = main(sys.argv[2:])
print("MEASURED " + json.dumps({"code": code, "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_matrix(path: Path, rows: int) -> None:
    """A 100-frame micro-expression (AU04 + AU12 rising and falling) repeated to ``rows`` rows."""
    from catalog.au_schema import OPENFACE_17

    t = np.arange(rows) % 100 / 99.0
    curve = np.sin(np.pi * t) ** 2 * 3.0
    values = np.zeros((rows, OPENFACE_17.n))
    values[:, OPENFACE_17.index("AU04")] = curve
    values[:, OPENFACE_17.index("AU12")] = curve * 0.8
    header = ",".join(OPENFACE_17.names)
    np.savetxt(path, values, delimiter=",", header=header, comments="", fmt="%.3f")


def write_template(path: Path) -> Path:
    from data.synthetic import DRIVEN_AUS, draw_face

    draw_face({name: 0.0 for name in DRIVEN_AUS}, 256, np.random.default_rng(0)).save(path)
    return path


SMALL_MODEL = ROOT / "pretrained" / "ganimation_cpu_small.pth"


def measure_peak_memory(rows: int, output_size: int, ckpt: str, template: Path, workdir: Path,
                        root: Path = ROOT) -> dict:
    matrix = workdir / f"aus_{rows}.csv"
    write_matrix(matrix, rows)
    argv = ["--mode", "test", "--aus_matrix", str(matrix), "--template", str(template), "--results_dir",
            str(workdir / f"results_{rows}"), "--output_size", str(output_size), "--fps", "30", "--gpu_ids", "-1",
            "--no_progress", "--ckpt", str(ckpt)]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), *argv], capture_output=True, text=True, cwd=root)
    seconds = time.perf_counter() - start
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("MEASURED ")), None)
    found = json.loads(line.split(" ", 1)[1]) if line is not None else {"code": proc.returncode}
    if proc.returncode != 0 or found["code"] != 0:
        raise RuntimeError(f"test mode failed for {rows} rows:\n{proc.stderr[-2000:]}")
    (result,) = (workdir / f"results_{rows}").iterdir()
    frames = len(list((result / "frames").glob("*.png")))
    return {"rows": rows, "frames": frames, "peak_mib": round(found["self_kb"] / 1024, 1),
            "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.measure_test_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[2000, 10000], help="AU matrix lengths to measure")
    p.add_argument("--output_size", type=int, default=256, choices=(128, 256))
    p.add_argument("--ckpt", default=str(SMALL_MODEL), help="checkpoint (default: the small bundled CPU model)")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose main.py runs (default: this one)")
    p.add_argument("--template", default=None, help="template face image (default: a drawn synthetic face)")
    args = p.parse_args(argv)
    print(f"test mode ({args.root}), AU matrix -> frames + target/compare mp4 + GIF at {args.output_size} px, CPU, "
          f"model {Path(args.ckpt).name}")
    print(f"{'rows':>7} {'frames':>7} {'peak MiB':>9} {'seconds':>8}")
    with tempfile.TemporaryDirectory(prefix="megan_memory_") as tmp:
        template = Path(args.template) if args.template else write_template(Path(tmp) / "template.png")
        for rows in args.rows:
            m = measure_peak_memory(rows, args.output_size, args.ckpt, template, Path(tmp), args.root.resolve())
            print(f"{m['rows']:>7} {m['frames']:>7} {m['peak_mib']:>9} {m['seconds']:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
