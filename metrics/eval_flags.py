"""The flags of an evaluation, declared once for ``python -m metrics.evaluate`` and ``main.py --mode eval``.

options/ builds main.py's eval group from ``add_eval_flags`` (its one import from metrics/), so the two commands
cannot drift apart. The frame-rate rule is here too: main.py checks its --fps (test and eval modes) with it.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from metrics.analysis import IDENTITY_EVERY
from metrics.clip_cache import CACHE_ENV, default_cache_dir
from metrics.frechet import INCEPTION_FILE
from metrics.motion import FLOW_METHODS

INCEPTION_ENV = "MEGAN_INCEPTION"  # default for --inception
# A rate that ffmpeg, GIF timing and the AU smoothing can use; high-speed ME cameras reach a few hundred.
FPS_RANGE = (1.0, 1000.0)
MAX_WORKERS = 256  # a process each, with its own models (about 300 MB): more is a typo


def fps_problem(fps: float, shown: str) -> str | None:
    """Why ``fps`` (typed as ``shown``) is not a usable frame rate; None when it is."""
    low, high = FPS_RANGE
    if not math.isfinite(fps):
        return f"{shown} is not a finite number"
    return None if low <= fps <= high else f"{shown}: must be between {low:g} and {high:g} frames per second"


def parse_fps(text: str) -> float:
    """--fps checked while parsing, so a bad rate stops the command before any clip is read."""
    try:
        fps = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    problem = fps_problem(fps, text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return fps


parse_fps.__name__ = "float"  # argparse names the type in its messages


def parse_workers(text: str) -> int:
    """A count from 1 to MAX_WORKERS (--workers, --identity_every), checked while parsing."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{text}: must be between 1 and {MAX_WORKERS}")
    return value


parse_workers.__name__ = "int"


def add_eval_flags(g, standalone: bool) -> None:
    """The evaluation's flags on a parser or argument group. ``standalone`` (python -m metrics.evaluate):
    --results is required, --inception defaults to ``$MEGAN_INCEPTION`` and --fps is declared here. In main.py
    --results is checked when --mode eval runs, the environment is read then, and --fps is test mode's."""
    g.add_argument("--results", required=standalone, default=None,
                   help="a run folder, a batch folder, or any tree of frame folders / videos"
                        + ("" if standalone else " (required for eval)"))
    g.add_argument("--sources", default=None,
                   help="source clips: a tree of frame folders / videos, or ULME pair folders (<pair>/imgs/)")
    g.add_argument("--templates", default=None, help="template faces (an image, or a tree of images)")
    g.add_argument("--out", default=None, help="output folder (default RESULTS/eval)")
    if standalone:
        g.add_argument("--fps", type=parse_fps, default=None,
                       help="the clips' frame rate (default: run.json, else dataset)")
    g.add_argument("--annotations", nargs="+", default=None,
                   help="FACS AU codes: ME annotation sheets (CASME II, SAMM, ...) or a CSV with name,aus columns")
    g.add_argument("--flow", choices=FLOW_METHODS, default="farneback", help="optical flow algorithm")
    g.add_argument("--no_report", action="store_true", help="write metrics.json and metrics.csv only")
    g.add_argument("--no_control", action="store_true",
                   help="skip the wrong-clip control (each motion metric also scored against another clip's source)")
    g.add_argument("--inception", default=(os.environ.get(INCEPTION_ENV) or None) if standalone else None,
                   metavar="PATH",
                   help="real Inception FID (fid_inception): a local copy of NVIDIA's TorchScript FID feature "
                        f"extractor {INCEPTION_FILE} (StyleGAN2-ADA-PyTorch's metrics file; never downloaded). "
                        f"Default: ${INCEPTION_ENV}; without it fid_inception is null")
    g.add_argument("--inception_device", default="cpu", help="torch device for --inception")
    g.add_argument("--workers", type=parse_workers, default=None, metavar="N",
                   help="processes that measure clips in parallel (default: the cores this process may use); "
                        "the numbers are the same with any N")
    g.add_argument("--cache_dir", default=None, metavar="DIR",
                   help=f"where source-clip and template measurements are kept between runs (default: "
                        f"${CACHE_ENV}, else ~/.cache/megan/eval); keyed by the frames' content and the measuring "
                        f"code's version, so an entry is never stale")
    g.add_argument("--no_cache", action="store_true", help="measure every clip afresh and keep nothing on disk")
    g.add_argument("--identity_every", type=parse_workers, default=IDENTITY_EVERY, metavar="K",
                   help=f"dlib identity descriptors on every K-th face frame (default {IDENTITY_EVERY}: dlib is the "
                        "slowest measurement; 1: every frame, the exact means)")


def cache_folder(cache_dir, no_cache: bool) -> Path | None:
    """The measurement cache's folder from --cache_dir / --no_cache: the default folder, the one given, or None."""
    if no_cache and cache_dir:
        raise ValueError("--cache_dir and --no_cache contradict each other: give one of them")
    return None if no_cache else Path(cache_dir) if cache_dir else default_cache_dir()


def eval_flag_names() -> tuple[str, ...]:
    """The destinations of the standalone command's flags, in declaration order (main.py rebuilds that command
    from the ones typed)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_eval_flags(parser, standalone=True)
    return tuple(action.dest for action in parser._actions)
