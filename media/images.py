"""Image discovery and decoding: any size or mode (grayscale SAMM, .bmp SMIC) becomes RGB uint8; names in natural
order and a stable split by name."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def natural_key(name: str) -> list:
    """Sort key treating digit runs as numbers: img9 < img10 (the seed sorted by the last 3 characters)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def deterministic_split(names: list[str], test_fraction: float = 0.05) -> tuple[list[str], list[str]]:
    """Split by a hash of the name, so the split is stable when images are added and never depends on a seed."""
    def bucket(name: str) -> float:
        return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    test = [n for n in names if bucket(n) < test_fraction]
    if not test and len(names) > 1:  # tiny sets: still hold one image out
        test = [min(names, key=bucket)]
    test_set = set(test)
    return [n for n in names if n not in test_set], test


def list_images(folder: str | Path) -> dict[str, Path]:
    """Image name without extension -> path, naturally sorted. Errors if two files share a name."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            if path.stem in found:
                raise ValueError(f"{folder}: two images named '{path.stem}' ({found[path.stem].name}, {path.name})")
            found[path.stem] = path
    return found


class BadImageError(ValueError):
    """An image that cannot be decoded. The message names the file; training adds the --skip_bad hint (test mode
    has no such flag).

    A DataLoader worker's exception reaches the main process rebuilt from one string (its whole traceback), so
    ``BadImageError(message)`` must work too: it keeps the original one-line message from that text."""

    def __init__(self, path, reason: str | None = None):
        if reason is None:  # rebuilt by torch from a worker's traceback text
            lines = [ln for ln in str(path).splitlines() if "BadImageError: " in ln]
            message = lines[-1].split("BadImageError: ", 1)[1] if lines else str(path)
            self.path = Path(message.split(": cannot read image", 1)[0]) if ": cannot read image" in message else None
        else:
            message, self.path = f"{path}: cannot read image ({reason}). Replace or remove the file", Path(path)
        super().__init__(message)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> 8-bit RGB. 16-bit and float greyscale are rescaled by a fixed range (a plain convert would clip
    to white): 0..65535 for integers, 0..1 for floats (0..255 when a float image holds larger values). Never by the
    image's own min and max: the frames of a clip must keep one scale (a single hot pixel would darken one frame)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            scaled = arr * 255 if arr.max(initial=0.0) <= 1.0 else arr
        else:
            scaled = arr / 257.0  # 65535 -> 255
        return Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8)).convert("RGB")
    return img.convert("RGB")  # L, LA, P, RGBA, CMYK, YCbCr ...


def load_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode to HxWx3 uint8, resized to size x size (face crops are square) with a high-quality filter."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # forces a full decode, so truncated files fail here and not in a worker later
            rgb = _to_rgb(ImageOps.exif_transpose(img))  # phones store rotation in EXIF
    except Image.DecompressionBombError as exc:  # PIL's guard against decompression bombs: name the file
        raise BadImageError(path, f"over PIL's pixel limit: {exc}") from exc
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise BadImageError(path, str(exc)) from exc
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS if size < min(rgb.size) else Image.Resampling.BICUBIC)
    return np.array(rgb, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only arrays


_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def numbering_gaps(names) -> list[int]:
    """Frame numbers missing between the first and last frame of a numbered sequence (``img46, img48`` ->
    ``[47]``). Names that do not share one prefix + number pattern have no numbering to check: ``[]``."""
    matches = [_NUMBERED.match(Path(str(n)).stem) for n in names]
    if len(matches) < 2 or not all(matches) or len({m.group(1) for m in matches}) != 1:
        return []
    numbers = sorted({int(m.group(2)) for m in matches})
    return sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))


def describe_gaps(gaps: list[int]) -> str:
    """``[47, 48, 90]`` -> ``3 missing frame number(s): 47, 48, 90``."""
    shown = ", ".join(map(str, gaps[:10])) + (" ..." if len(gaps) > 10 else "")
    return f"{len(gaps)} missing frame number(s): {shown}"
