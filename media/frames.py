"""Writing results: frames, H.264 mp4 (ffmpeg from the imageio-ffmpeg wheel), GIF, side-by-side, AU curves.
Reading videos back (frames, rate, frame count) is ``media.video``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3); Lanczos when shrinking, bicubic when enlarging."""
    if frames.shape[1:3] == (size, size):
        return frames
    method = Image.Resampling.LANCZOS if size < frames.shape[1] else Image.Resampling.BICUBIC
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), method)) for f in frames])


def write_png_frames(frames: np.ndarray, folder: Path, stem: str = "", ext: str = ".png", start: int = 0,
                     total: int | None = None) -> list[Path]:
    """NNN.png (or .jpg, N2ME's format) with at least three digits, so names sort in time order. ``start`` and
    ``total`` (the whole sequence's length) let a sequence be written batch by batch."""
    folder.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(total if total is not None else len(frames))))
    paths = []
    for i, frame in enumerate(frames, start=start):
        path = folder / f"{stem}{i:0{width}d}{ext}"
        Image.fromarray(frame).save(path, **({"quality": 95} if ext == ".jpg" else {}))
        paths.append(path)
    return paths


# GIF: ffmpeg picks one palette per frame (palettegen stats_mode=single), so no frame waits for the others.
GIF_FILTER = "split[a][b];[a]palettegen=stats_mode=single[p];[b][p]paletteuse=new=1"


def gif_rate(fps: float) -> float:
    """GIF delays are in 1/100 s with a practical minimum of 2 (browsers slow faster GIFs down): every frame is kept
    and played at most at 50 fps."""
    return 1000 / max(20, int(round(1000 / fps / 10)) * 10)


class VideoStream:
    """Frames sent one at a time to an ffmpeg process, so memory does not grow with the clip's length.

    mp4: H.264 in yuv420p, which ordinary players (browsers, QuickTime, Windows) open; sizes padded to even.
    gif: every frame, looping, at :func:`gif_rate`."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        import imageio_ffmpeg

        if Path(path).suffix.lower() == ".gif":
            options = {"fps": gif_rate(fps), "codec": "gif", "pix_fmt_out": "pal8",
                       "output_params": ["-vf", GIF_FILTER, "-loop", "0"]}
        else:
            options = {"fps": fps, "codec": "libx264", "pix_fmt_out": "yuv420p",
                       "output_params": ["-crf", "16", "-preset", "medium", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]}
        self._writer = imageio_ffmpeg.write_frames(str(path), (width, height), pix_fmt_in="rgb24", quality=None,
                                                   macro_block_size=1, ffmpeg_log_level="error", **options)
        self._writer.send(None)

    def send(self, frames: np.ndarray) -> None:
        """One (H, W, 3) frame or a (T, H, W, 3) batch."""
        for frame in (frames if frames.ndim == 4 else frames[None]):
            self._writer.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    with VideoStream(path, frames.shape[2], frames.shape[1], fps) as video:
        video.send(frames)


def write_gif(frames: np.ndarray, path: Path, fps: float) -> None:
    with VideoStream(path, frames.shape[2], frames.shape[1], fps) as video:
        video.send(frames)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    """(T, H, W, 3) pairs -> (T, H, 2W + gap, 3), white gap."""
    t, h, w, _ = left.shape
    out = np.full((t, h, 2 * w + gap, 3), 255, dtype=np.uint8)
    out[:, :, :w] = left
    out[:, :, w + gap:] = right
    return out


def plot_au_curves(path: Path, au_names: tuple[str, ...], driven: np.ndarray, source: np.ndarray | None,
                   fps: float, apex: int | None, min_peak: float = 0.2) -> list[str]:
    """One panel per AU that moves (peak >= min_peak): source curve vs the curve that drove the generator.

    Returns the AU names plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peaks = driven.max(axis=0) if source is None else np.maximum(driven.max(axis=0), source.max(axis=0))
    active = [j for j in range(len(au_names)) if peaks[j] >= min_peak] or [int(np.argmax(peaks))]
    cols = min(4, len(active))
    rows = -(-len(active) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True)
    t_ms = np.arange(len(driven)) / fps * 1000
    for ax, j in zip(axes.flat, active):
        if source is not None:
            ax.plot(t_ms, source[:, j], color="0.6", lw=1, label="source")
        ax.plot(t_ms, driven[:, j], color="C3", lw=1.5, label="driven")
        if apex is not None:
            ax.axvline(t_ms[apex], color="C0", ls=":", lw=1)
        ax.set_title(au_names[j], fontsize=9)
        ax.set_ylim(-0.1, 5.1)
    for ax in list(axes.flat)[len(active):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.supxlabel("time (ms)", fontsize=9)
    fig.supylabel("intensity (0..5)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [au_names[j] for j in active]

