"""Console + ``log.txt`` logging that does not tear tqdm bars, and ``stats.jsonl`` scalars."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from tqdm import tqdm


class _TqdmHandler(logging.StreamHandler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record))
        except Exception:  # logging must never kill training
            self.handleError(record)


def setup_logging(run_dir: Path | None, is_main: bool, level: int = logging.INFO) -> None:
    """Root logger: console on the main rank, plus ``run_dir/log.txt``. Other ranks only log warnings."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_megan", False):
            root.removeHandler(h)
            h.close()
    root.setLevel(level if is_main else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [_TqdmHandler()]
    if run_dir is not None and is_main:
        handlers.append(logging.FileHandler(run_dir / "log.txt"))
    for h in handlers:
        h.setFormatter(fmt)
        h._megan = True
        root.addHandler(h)


class StatsWriter:
    """Appends one JSON object per line; on resume, drops lines past the step the run continues from."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        if resume_step is not None and path.exists():
            kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= resume_step]
            path.write_text("".join(ln + "\n" for ln in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=False) + "\n")


def read_stats(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
