"""Video decoding: the frames of a video file as RGB uint8, in order, and its rate, size and length. The reading
side of ``media.frames`` (which writes), as ``media.images`` is for stills.

ffmpeg (the binary of the imageio-ffmpeg wheel) decodes .mp4 .avi .mov .mkv .webm; Pillow decodes GIF, giving each
stored frame exactly once whatever its delay. A file that cannot be decoded raises :class:`BadVideoError`, naming
the file and the fix; frames are never skipped.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")  # decoded by ffmpeg
GIF_EXTENSIONS = (".gif",)  # decoded by Pillow


class BadVideoError(ValueError):
    """A video or GIF that cannot be decoded (missing, truncated, not a video). The message names the file and the
    fix; a ValueError, so the commands' one-line ``error:`` handling reports it."""

    def __init__(self, path, reason: str, fix: str | None = None):
        self.path, self.reason = Path(path), reason
        self.fix = fix or _default_fix(self.path)
        super().__init__(f"{self.path}: cannot read video ({reason}). {self.fix}")

    def __reduce__(self):  # a multiprocessing worker pickles its exception: rebuild it from its arguments
        return type(self), (self.path, self.reason, self.fix)


def is_gif(path: str | Path) -> bool:
    return Path(path).suffix.lower() in GIF_EXTENSIONS


def _default_fix(path: Path) -> str:
    if is_gif(path):
        return "Re-export it or remove it"
    return f"Re-encode it (ffmpeg -i '{path.name}' -c:v libx264 -pix_fmt yuv420p fixed.mp4) or remove it"


def _short(err: Exception) -> str:
    """imageio-ffmpeg's messages run to many lines (what failed, then ffmpeg's log); the last line says why."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.startswith("===")]
    return lines[-1][:300] if lines else type(err).__name__


@contextmanager
def _ffmpeg(path: Path):
    """(ffmpeg's header as a dict, iterator of raw RGB24 frames); ffmpeg is stopped when the block ends, even when
    the caller stops early."""
    import imageio_ffmpeg

    if not path.is_file():  # ffmpeg's own message for a missing file is an empty log
        raise BadVideoError(path, "no such file", "Check the path")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        try:
            meta = next(reader)
            if not meta.get("size"):
                raise ValueError("no video stream")
        except Exception as err:  # whatever fails while ffmpeg opens the file is a file it cannot decode
            raise BadVideoError(path, f"ffmpeg cannot open it: {_short(err)}") from err
        yield meta, _raw_frames(path, reader)
    finally:
        reader.close()


def _raw_frames(path: Path, reader) -> Iterator[bytes]:
    for index in itertools.count(1):
        try:
            raw = next(reader)
        except StopIteration:
            return
        except RuntimeError as err:  # a frame cut short or a decoder failure mid-file
            raise BadVideoError(path, f"frame {index}: {_short(err)}") from err
        yield raw


def _gif_frames(path: Path) -> Iterator[np.ndarray]:
    try:
        with Image.open(path) as gif:
            for frame in ImageSequence.Iterator(gif):
                yield np.array(frame.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise BadVideoError(path, str(err) or type(err).__name__) from err


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Each frame of a video or GIF in order, as a writable (H, W, 3) uint8 RGB array; memory stays one frame."""
    path = Path(path)
    if is_gif(path):
        yield from _gif_frames(path)
        return
    with _ffmpeg(path) as (meta, raw_frames):
        width, height = meta["size"]
        for raw in raw_frames:
            yield np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()


def load_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of a video or GIF (see :func:`iter_frames`)."""
    return list(iter_frames(path))


def video_fps(path: str | Path) -> float | None:
    """The rate ffmpeg reads from the file; None when it is unknown (ffmpeg says 0) and for a GIF, whose delays are
    whole hundredths of a second rounded by its writer (``media.frames.gif_rate``): the caller's default applies."""
    path = Path(path)
    if is_gif(path):
        return None
    with _ffmpeg(path) as (meta, _):
        return float(meta["fps"]) if meta.get("fps") else None


def probe_video(path: str | Path) -> dict:
    """Frame count, fps, size (width, height) and codec of a video or GIF as ffmpeg decodes it (used by tests to
    check what the writers made). ``fps`` is ffmpeg's number as is: 0 when unknown."""
    with _ffmpeg(Path(path)) as (meta, raw_frames):
        count = sum(1 for _ in raw_frames)
    return {"frames": count, "fps": meta.get("fps"), "size": tuple(meta.get("size", ())), "codec": meta.get("codec")}
