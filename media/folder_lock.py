"""One writer at a time in an output folder that several commands (or machines) may share.

``FolderLock(folder, command)`` holds ``folder/.lock`` (pid and host) while the block runs. A second writer is
refused with the holder named, or waits up to ``wait_s`` seconds for it (a short write, such as eval's three files).
A lock left by a process that is gone is taken over when it was recorded on this host; one from another host is
never judged from here (its pid means nothing on this machine).
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"


class FolderInUseError(ValueError):
    """Another live process writes the folder (a ValueError: the commands print it as their one-line error)."""


class FolderLock:
    def __init__(self, folder: Path, command: str, wait_s: float = 0.0):
        self.path, self.command, self.wait_s = Path(folder) / LOCK_NAME, command, wait_s

    def __enter__(self) -> FolderLock:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self._live_holder()
                if holder is None:
                    continue  # a stale lock was removed: try again
                if time.monotonic() >= deadline:
                    raise FolderInUseError(f"{self.path.parent} is being written by {holder} ({self.path}): wait for "
                                           f"it, choose another output folder, or, if that process is gone, delete "
                                           f"{self.path}") from None
                time.sleep(0.2)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command}))
            return self

    def _live_holder(self) -> str | None:
        """Who holds the lock, or None after removing a lock whose process is gone (same host only)."""
        try:
            holder = json.loads(self.path.read_text())
            pid, host = int(holder["pid"]), str(holder["host"])
        except FileNotFoundError:
            return None  # released meanwhile
        except (OSError, ValueError, KeyError, TypeError):
            return "another process (its lock is being written)"
        who = f"{holder.get('command', 'another run')} (pid {pid} on host {host})"
        if host != socket.gethostname():
            return who
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.path.unlink(missing_ok=True)
            return None
        except PermissionError:
            pass
        return who

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
