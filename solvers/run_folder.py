"""Run folders that one process owns at a time, that a failed start does not block, and that a killed process does
not litter: the folder name check, the lock file, and the clean-up of stale temporary files.

- ``--name`` is one folder name inside ``--ckpt_dir`` (``../x`` or ``a/b`` would write elsewhere).
- A folder without any checkpoint is what a start that failed before its first save leaves: it is reused.
- ``.lock`` holds the owner's pid and host; a second process is refused with both named. It is released on every
  exit path (return, exception, ``atexit``); after a SIGKILL the next start sees that the pid is gone (same host)
  and takes the lock over.
- Temporary files and folders (``.NAME.tmp<PID>``: a checkpoint being written; ``.NAME.tmp<PID>@<HOST>``: a result
  folder being filled, in a results folder that several machines may share) whose process is gone are removed when
  the same run or results folder is used again. A pid is only checked on its own host: another host's temporary
  folder is left alone (its run may be alive there).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shlex
import shutil
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
# What a start writes before its first checkpoint; removed when a folder without checkpoints is reused.
EARLY_OUTPUTS = ("options.json", "stats.jsonl", "train_ids.txt", "test_ids.txt", "samples", "tb")
_TEMP_RE = re.compile(r"^\..+\.tmp(\d+)(?:@(.+))?$")
_HELD: set[Path] = set()  # lock files this process holds


class RunFolderInUseError(FileExistsError):
    pass


def check_name(name: str) -> str:
    """``--name`` must be a plain folder name, so the run stays inside ``--ckpt_dir``."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name or Path(name).is_absolute():
        raise ValueError(f"--name {name!r}: must be a single folder name (no '/', '\\' or '..'); the run folder is "
                         f"created inside --ckpt_dir")
    return name


def has_checkpoint(run_dir: Path) -> bool:
    return any(p.suffix == ".pth" and not p.name.startswith(".") for p in Path(run_dir).iterdir())


def new_run_dir(base: Path, name: str | None, model: str) -> Path:
    """The folder of a new run: fresh, or one that an earlier failed start left without a checkpoint."""
    name = check_name(name) if name is not None else f"{model}_{time.strftime('%y%m%d_%H%M%S')}"
    run_dir = base / name
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return run_dir
    if has_checkpoint(run_dir):
        raise FileExistsError(f"run folder {run_dir} already exists: continue it with --resume "
                              f"{shlex.quote(str(run_dir))}, or pass --name for a new run")
    holder = live_holder(run_dir)
    if holder is not None:
        raise RunFolderInUseError(in_use_message(run_dir, holder))
    for leftover in EARLY_OUTPUTS:
        path = run_dir / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    log.warning("run folder %s holds no checkpoint (an earlier start stopped before its first save): reusing it",
                run_dir)
    return run_dir


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def live_holder(run_dir: Path) -> dict | None:
    """The lock's content when another live process (or one on another host) holds it, else None."""
    path = Path(run_dir) / LOCK_NAME
    holder = _read_lock(path) if path.exists() else None
    if holder is None or path.resolve() in _HELD:
        return None
    if holder.get("host") != socket.gethostname():
        return holder  # cannot check a process on another machine: assume it runs
    pid = int(holder.get("pid", -1))
    return holder if pid != os.getpid() and pid_alive(pid) else None


def in_use_message(run_dir: Path, holder: dict) -> str:
    return (f"run folder {run_dir} is in use by pid {holder.get('pid')} on host {holder.get('host')} (since "
            f"{holder.get('started')}): wait for it to finish or stop it; if that process is gone, delete "
            f"{shlex.quote(str(Path(run_dir) / LOCK_NAME))}")


class RunLock:
    """``run_dir/.lock`` for as long as this process works in the folder."""

    def __init__(self, run_dir: Path):
        self.path = (Path(run_dir) / LOCK_NAME).resolve()
        holder = live_holder(run_dir)
        if holder is not None:
            raise RunFolderInUseError(in_use_message(run_dir, holder))
        stale = _read_lock(self.path) if self.path.exists() else None
        if stale is not None:
            log.warning("removing the stale lock of pid %s (no longer running) in %s", stale.get("pid"), run_dir)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        tmp = self.path.with_name(f"{LOCK_NAME}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, self.path)
        _HELD.add(self.path)
        atexit.register(self.release)
        remove_stale_temp(run_dir)

    def release(self) -> None:
        if self.path in _HELD:
            _HELD.discard(self.path)
            self.path.unlink(missing_ok=True)


def temp_path(path: Path) -> Path:
    """Where ``path`` is filled before it is renamed into place: hidden, and naming this process and its host."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}@{socket.gethostname()}")


def remove_stale_temp(folder: Path) -> list[Path]:
    """Delete ``.NAME.tmp<PID>[@HOST]`` files and folders in ``folder`` whose process is no longer running; one
    recorded on another host is never touched (its pid cannot be checked from here)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        m = _TEMP_RE.match(path.name)
        if m is None or m.group(2) not in (None, socket.gethostname()):
            continue
        if int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.warning("removed %d stale temporary file(s) of killed processes in %s: %s", len(removed), folder,
                    ", ".join(p.name for p in removed[:5]))
    return removed


class LockedRun:
    """A solver whose run folder lock is released when its run ends, however it ends."""

    def __init__(self, solver, lock: RunLock | None):
        self.solver, self.lock = solver, lock

    def run(self):
        try:
            return self.solver.run()
        finally:
            if self.lock is not None:
                self.lock.release()

    @property
    def interrupted(self) -> bool:
        return getattr(self.solver, "interrupted", False)
