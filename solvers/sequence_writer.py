"""Writing one generated sequence batch by batch: PNG frames, target/compare/source mp4 and the GIF.

Test mode used to hold every frame several times (generated, resized, source, side by side, GIF images): 1.9 GB
for a 2,000-row AU matrix at 256 px. Here each batch is resized, written and sent to the ffmpeg encoders, then
dropped, so memory stays flat in the sequence's length (``tools/measure_test_memory.py`` measures it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from media import frames as media
from media.images import load_rgb

SIDE_BY_SIDE_GAP = 4


class SequenceWriter:
    """``folder/frames/NNN.png`` and, with ``videos``, ``target.mp4``, ``compare.mp4`` (source | result),
    ``target.gif`` and ``source.mp4`` (when there are source frames; else ``still`` stands in for the source)."""

    def __init__(self, folder: Path, total: int, size: int, fps: float, videos: bool,
                 source_frames: list[Path] | None, still: np.ndarray | None):
        self.folder, self.total, self.size = Path(folder), total, size
        self.source_frames, self.still = source_frames, still
        self.written = 0
        self.streams: dict[str, media.VideoStream] = {}
        (self.folder / "frames").mkdir(parents=True, exist_ok=True)
        if videos:
            if source_frames is not None:
                self._open("source.mp4", size, fps)
            self._open("target.mp4", size, fps)
            self._open("compare.mp4", 2 * size + SIDE_BY_SIDE_GAP, fps)
            self._open("target.gif", size, fps)

    def _open(self, name: str, width: int, fps: float) -> None:
        self.streams[name] = media.VideoStream(self.folder / name, width, self.size, fps)

    def add(self, generated: np.ndarray) -> None:
        """One batch of generated frames (B, H, W, 3) uint8, at the network's size."""
        result = media.resize_frames(generated, self.size)
        media.write_png_frames(result, self.folder / "frames", start=self.written, total=self.total)
        if self.streams:
            source = self._source(len(result))
            if "source.mp4" in self.streams:
                self.streams["source.mp4"].send(source)
            self.streams["target.mp4"].send(result)
            self.streams["compare.mp4"].send(media.side_by_side(source, result, SIDE_BY_SIDE_GAP))
            self.streams["target.gif"].send(result)
        self.written += len(result)

    def _source(self, n: int) -> np.ndarray:
        if self.source_frames is None:
            return np.repeat(self.still[None], n, axis=0)
        return np.stack([load_rgb(p, self.size) for p in self.source_frames[self.written:self.written + n]])

    def files(self) -> list[str]:
        return ["frames/", *self.streams]

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Finish every encoder; after an error, close them quietly (the caller discards the folder)."""
        for stream in self.streams.values():
            try:
                stream.close()
            except Exception:
                if exc_type is None:
                    raise
