"""What tells a changed input from the one a resume recorded: every file's path, size and modification time.

Cheap (no file is read) and enough for the cases that matter: a file replaced, added or removed. Used by
``openface.calibrate --cache``, ``for_megc2021.py``'s reuse of earlier results and training's ``--resume``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def listing(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each file in ``paths`` (files, or folders walked through, links followed)."""
    found = []
    for path in map(Path, paths):
        if path.is_file():
            st = path.stat()
            found.append((str(path.resolve()), st.st_size, st.st_mtime_ns))
            continue
        for here, _, files in os.walk(path, followlinks=True):
            for name in files:
                st = (Path(here) / name).stat()
                found.append((str((Path(here) / name).resolve()), st.st_size, st.st_mtime_ns))
    return sorted(found)


def files_signature(paths: list[Path]) -> str:
    """One hash of :func:`listing` (a record stays one line)."""
    return hashlib.sha256(json.dumps(listing(paths)).encode()).hexdigest()
