"""Video decoding: the frames of a video file as RGB uint8, in order, and its rate, size and length. The reading
side of ``media.frames`` (which writes), as ``media.images`` is for stills.

ffmpeg (the binary of the imageio-ffmpeg wheel) decodes .mp4 .avi .mov .mkv .webm; Pillow decodes GIF, giving each
stored frame exactly once whatever its delay. A file that cannot be decoded raises :class:`BadVideoError`, naming
the file and the fix. That includes a file that decodes only in part (cut short, a damaged packet): ffmpeg would
log it and stop early with success, so it runs with -xerror and its exit status is checked, and a GIF must end
with its trailer. A clip is read whole or not at all: frames are never skipped.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")  # decoded by ffmpeg
GIF_EXTENSIONS = (".gif",)  # decoded by Pillow
GIF_TRAILER = b";"  # the byte that ends every complete GIF


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


def _header(path: Path) -> dict:
    """ffmpeg's description of the file as imageio-ffmpeg parses it: fps (0 when unknown), size (width, height) of
    the decoded frames, codec, duration."""
    import imageio_ffmpeg

    if not path.is_file():  # ffmpeg's own message for a missing file is an empty log
        raise BadVideoError(path, "no such file", "Check the path")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        if not meta.get("size"):
            raise ValueError("no video stream")
    except Exception as err:  # whatever fails while ffmpeg opens the file is a file it cannot decode
        raise BadVideoError(path, f"ffmpeg cannot open it: {_short(err)}") from err
    finally:
        reader.close()  # stops that ffmpeg: the frames come from _decode
    return meta


def _decode(path: Path, size: tuple[int, int]) -> Iterator[bytes]:
    """The raw RGB24 frames, as imageio-ffmpeg's read_frames asks ffmpeg for them (same frames, same order), but
    with -xerror and the exit status checked: without them ffmpeg logs a damaged packet or a truncated file and
    ends early with status 0, and frames would be missing without a word. Stopping early kills ffmpeg."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-xerror", "-i", str(path),
               "-pix_fmt", "rgb24", "-vcodec", "rawvideo", "-f", "image2pipe", "-"]
    frame_bytes = size[0] * size[1] * 3
    with tempfile.TemporaryFile() as log, subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                           stderr=log) as ffmpeg:
        try:
            count, cut_short = yield from _chunks(ffmpeg.stdout, frame_bytes)
        except BaseException:  # the caller stopped early (GeneratorExit) or failed: no need to decode the rest
            ffmpeg.kill()
            raise
        if ffmpeg.wait() != 0:
            log.seek(0)
            raise BadVideoError(path, f"ffmpeg stopped after {count} frame(s): {_first_error(log.read())}")
        if cut_short:
            raise BadVideoError(path, f"frame {count + 1} is cut short")


def _first_error(log: bytes) -> str:
    """The first line ffmpeg logged (the cause; later lines are its consequences), without the ``[h264 @ 0x..]``
    source tags."""
    lines = [re.sub(r"^(\[[^]]*\]\s*)+", "", line).strip() for line in log.decode(errors="replace").splitlines()]
    return next((line[:300].rstrip(".") for line in lines if line), "no reason given")


def _chunks(stream, frame_bytes: int) -> Generator[bytes, None, tuple[int, bool]]:
    """Yields whole frames; returns (how many, whether a partial frame followed them)."""
    count = 0
    while len(raw := stream.read(frame_bytes)) == frame_bytes:  # a buffered pipe: whole frames until ffmpeg stops
        count += 1
        yield raw
    return count, bool(raw)


def _gif_frames(path: Path) -> Iterator[np.ndarray]:
    try:
        with Image.open(path) as gif:
            for frame in ImageSequence.Iterator(gif):
                yield np.array(frame.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # Pillow fails on a cut GIF with OSError, IndexError, ... depending on where it ends
        raise BadVideoError(path, str(err) or type(err).__name__) from err
    # Cut exactly between two frames, a GIF still decodes, just shorter: only its missing trailer tells.
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        if fh.read(1) != GIF_TRAILER:
            raise BadVideoError(path, "cut short: it does not end with the GIF trailer, frames may be missing")


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Each frame of a video or GIF in order, as a writable (H, W, 3) uint8 RGB array; memory stays one frame."""
    path = Path(path)
    if is_gif(path):
        yield from _gif_frames(path)
        return
    width, height = _header(path)["size"]
    for raw in _decode(path, (width, height)):
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
    fps = _header(path).get("fps")
    return float(fps) if fps else None


def probe_video(path: str | Path) -> dict:
    """Frame count, fps, size (width, height) and codec of a video or GIF as ffmpeg decodes it (used by tests to
    check what the writers made). ``fps`` is ffmpeg's number as is: 0 when unknown."""
    path = Path(path)
    meta = _header(path)
    count = sum(1 for _ in _decode(path, meta["size"]))
    return {"frames": count, "fps": meta.get("fps"), "size": tuple(meta.get("size", ())), "codec": meta.get("codec")}
