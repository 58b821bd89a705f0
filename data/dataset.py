"""The training set: face images with their AU vectors, checked up front so a bad file never kills a long run.

Images are decoded once at ``load_size`` and, when they fit (``cache='auto'``), kept in RAM as one uint8 tensor:
decoding is the usual bottleneck of GANimation training and the cache makes the loader free. Random operations
(crop, flip, target AUs, noise) happen on whole batches in ``data/augment.py`` with a generator the trainer owns,
so the order and augmentation of every step are reproducible and resumable.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from catalog.au_schema import AUSchema
from data.au_table import find_au_table, load_au_table
from data.id_lists import find_id_list, read_id_list
from media.images import BadImageError, deterministic_split, list_images, load_rgb

log = logging.getLogger(__name__)

CACHE_AUTO_LIMIT_BYTES = 4 << 30  # decoded uint8 images above this stream from disk instead


@dataclass
class SplitInfo:
    """What the data root provided, for the run folder's records."""

    train: list[str]
    test: list[str]
    id_source: str  # the id list file used, or "deterministic split"
    au_source: str
    skipped_bad: list[str] = field(default_factory=list)


def _missing_report(names: list[str], what: str, where: Path) -> str:
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    return f"{len(names)} {what} ({where}): {shown}"


def resolve_split(data_root: Path, images: dict[str, Path], table: dict[str, np.ndarray]) -> tuple[list, list, str]:
    train_path, test_path = find_id_list(data_root, "train"), find_id_list(data_root, "test")
    if train_path is None:
        usable = [n for n in images if n in table]
        if len(usable) < len(images):  # without an id list, images without AUs are left out: say so
            dropped = [n for n in images if n not in table]
            log.warning("leaving out %d image(s) of %s that have no AU row: %s", len(dropped), data_root,
                        ", ".join(dropped[:20]) + (" ..." if len(dropped) > 20 else ""))
        train, test = deterministic_split(usable)
        return train, test, "deterministic split"
    train = read_id_list(train_path)
    test = read_id_list(test_path) if test_path else []
    return train, test, str(train_path)


def check_names(names: list[str], images: dict[str, Path], table: dict[str, np.ndarray], imgs_dir: Path,
                au_source: str, id_source: str) -> None:
    no_file = [n for n in names if n not in images]
    if no_file:
        raise FileNotFoundError(
            "images listed in " + id_source + " but missing: " + _missing_report(no_file, "images", imgs_dir)
            + ". Fix the id list or add the images.")
    no_aus = [n for n in names if n not in table]
    if no_aus:
        raise KeyError(
            "AU table entries missing for " + _missing_report(no_aus, "images", Path(au_source))
            + ". Measure their AUs (python -m data.prepare_aus) or remove them from the id list.")


def decode_all(paths: list[Path], size: int, workers: int, keep: bool):
    """Decode every image in parallel (PIL releases the GIL while decoding); collect failures instead of raising.

    Returns the arrays (None entries where decoding failed; all None when ``keep`` is false, so a verification
    pass over a huge set holds no pixels) and the list of errors.
    """
    def one(path: Path):
        try:
            arr = load_rgb(path, size)
            return (arr if keep else None), None
        except BadImageError as err:
            return None, err

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, paths, chunksize=64))
    return [r[0] for r in results], [r[1] for r in results if r[1] is not None]


class FaceAUDataset(Dataset):
    """Item i -> (uint8 image 3xLxL, AU vector scaled to [0, 1] as float32, index i)."""

    def __init__(self, paths: list[Path], aus: np.ndarray, load_size: int, pixels: torch.Tensor | None = None):
        self.paths = paths
        self.aus = torch.as_tensor(aus, dtype=torch.float32)
        self.load_size = load_size
        self.pixels = pixels  # (N, 3, L, L) uint8 when cached in RAM

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> torch.Tensor:
        if self.pixels is not None:
            return self.pixels[i]
        return torch.from_numpy(load_rgb(self.paths[i], self.load_size)).permute(2, 0, 1).contiguous()

    def __getitem__(self, i: int):
        return self.image(i), self.aus[i], i

    def __getitems__(self, indices: list[int]):
        # Batched fetch: one gather from the RAM cache instead of 25 small copies.
        idx = torch.as_tensor(indices, dtype=torch.long)
        imgs = self.pixels[idx] if self.pixels is not None else torch.stack([self.image(i) for i in indices])
        return imgs, self.aus[idx], idx


def collate_batch(batch):
    """Collate for DataLoader: ``__getitems__`` already returns a batch."""
    return batch


def build_training_set(data_root: str | Path, schema: AUSchema, *, imgs_dir: str = "imgs", aus_file: str | None = None,
                       load_size: int = 128, max_dataset_size: int | None = None, skip_bad: bool = False,
                       cache: str = "auto", workers: int = 4,
                       clip_aus: bool = False) -> tuple[FaceAUDataset, SplitInfo]:
    """Everything checked before the first step: folder, AU table, id lists, every image decodable."""
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data_root {root} does not exist")
    img_folder = root / imgs_dir
    if not img_folder.is_dir():
        raise FileNotFoundError(f"no image folder {img_folder}: put the training face crops in {img_folder}/")
    images = list_images(img_folder)
    if not images:
        raise FileNotFoundError(f"{img_folder} holds no images (.jpg/.png/.bmp/...)")
    au_path = Path(aus_file) if aus_file else find_au_table(root)
    table = load_au_table(au_path, schema, clip=clip_aus)
    train, test, id_source = resolve_split(root, images, table)
    check_names(train, images, table, img_folder, str(au_path), id_source)
    if max_dataset_size:
        train = train[:max_dataset_size]
    if not train:
        raise ValueError(f"no training images left in {root} (id list {id_source})")

    paths = [images[n] for n in train]
    pixels, bad_names = None, []
    decoded_bytes = len(paths) * 3 * load_size * load_size
    use_cache = cache == "ram" or (cache == "auto" and decoded_bytes <= CACHE_AUTO_LIMIT_BYTES)
    if cache != "off":  # "off" trusts the files; otherwise every image is decoded once before training starts
        arrays, errors = decode_all(paths, load_size, workers, keep=use_cache)
        if errors and not skip_bad:
            listing = "\n  ".join(str(e) for e in errors[:20])
            raise ValueError(f"{len(errors)} unreadable image(s) in {img_folder} (pass --skip_bad to leave them out "
                             f"of training, with a count in the log):\n  {listing}")
        bad = {e.path for e in errors}
        bad_names = [n for n, p in zip(train, paths) if p in bad]
        if bad_names:
            log.warning("skipping %d unreadable image(s) (--skip_bad): %s", len(bad_names), ", ".join(bad_names[:20]))
        keep = [i for i, p in enumerate(paths) if p not in bad]
        train, paths = [train[i] for i in keep], [paths[i] for i in keep]
        if use_cache:
            pixels = torch.from_numpy(np.stack([arrays[i] for i in keep])).permute(0, 3, 1, 2).contiguous()
    if not train:
        raise ValueError(f"every training image in {img_folder} was unreadable")
    aus = np.stack([schema.to_network(table[n]) for n in train])
    dataset = FaceAUDataset(paths, aus, load_size, pixels)
    return dataset, SplitInfo(train, test, id_source, str(au_path), bad_names)
