"""``--mode eval``: score result folders with ``metrics.evaluate`` and print its summary, as a solver like the others.

``python main.py --mode eval ...`` and ``python -m metrics.evaluate ...`` run the same function with the same flags;
this class only carries the settings (built from the flags in ``solvers.composition.create_solver``) and the exit code.
"""
from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from metrics import evaluate as evaluate_module
from metrics.analysis import IDENTITY_EVERY
from metrics.eval_flags import eval_flag_names


@dataclass
class EvalSettings:
    results: Path
    sources: Path | None = None
    templates: Path | None = None
    out: Path | None = None
    fps: float | None = None
    annotations: list[str] | None = None
    flow: str = "farneback"
    report: bool = True
    inception: str | None = None
    inception_device: str = "cpu"
    workers: int = 1  # processes measuring clips (metrics/parallel.py)
    cache_dir: Path | None = None  # measurements kept between runs (metrics/clip_cache.py); None: this run only
    identity_every: int = IDENTITY_EVERY  # dlib descriptors on every so many face frames (metrics/analysis.py)
    control: bool = True  # the wrong-clip control (--no_control switches it off)
    command: str | None = None  # what the report shows as the command that made it


class Evaluation:
    def __init__(self, settings: EvalSettings):
        self.settings = settings
        self.exit_code = 0  # 0: every pair scored; 1: some pairs failed (see metrics.json)

    def run(self) -> dict:
        s = self.settings
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        inception = s.inception or os.environ.get(evaluate_module.INCEPTION_ENV) or None
        try:
            doc = evaluate_module.evaluate(s.results, s.sources, s.templates, s.out, s.fps,
                                           annotations=s.annotations, flow=s.flow, report=s.report, progress=True,
                                           command=s.command, inception=inception,
                                           inception_device=s.inception_device, workers=s.workers,
                                           cache_dir=s.cache_dir, identity_every=s.identity_every,
                                           control=s.control)
        except (OSError, ValueError) as err:  # bad input, or an --out that cannot be written
            if inception and not s.inception and "--inception" in str(err):  # say where the path came from
                raise type(err)(f"{err} (--inception came from ${evaluate_module.INCEPTION_ENV}={inception})") from err
            raise
        evaluate_module.print_summary(doc)
        self.exit_code = 1 if doc["batch"]["failed"] else 0
        return doc


EVAL_FLAGS = eval_flag_names()  # the flags of python -m metrics.evaluate, from their one declaration


def eval_command(opt) -> str:
    """The equivalent ``python -m metrics.evaluate`` command line: the eval flags that were typed, in a fixed order."""
    argv = []
    for flag in EVAL_FLAGS:
        if flag not in opt.explicit:
            continue
        value = getattr(opt, flag)
        if isinstance(value, bool):
            argv += [f"--{flag}"] if value else []
        elif isinstance(value, list):
            argv += [f"--{flag}", *map(str, value)]
        else:
            argv += [f"--{flag}", str(value)]
    return shlex.join(["python", "-m", "metrics.evaluate", *argv])
