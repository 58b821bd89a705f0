"""Train/test id lists: ULME ``train_ids.csv`` (names with extension) and N2ME ``train_ids.txt``."""
from __future__ import annotations

import hashlib
from pathlib import Path

ID_LIST_NAMES = {"train": ("train_ids.csv", "train_ids.txt"), "test": ("test_ids.csv", "test_ids.txt")}


def read_id_list(path: str | Path) -> list[str]:
    """Image names without extension, in file order (blank lines and a stray CSV index column ignored)."""
    names = []
    for line in Path(path).read_text().splitlines():
        field = line.strip().split(",")[-1].strip()
        if field:
            names.append(Path(field).stem)
    return names


def find_id_list(data_root: str | Path, split: str) -> Path | None:
    for name in ID_LIST_NAMES[split]:
        path = Path(data_root) / name
        if path.is_file():
            return path
    return None


def deterministic_split(names: list[str], test_fraction: float = 0.05) -> tuple[list[str], list[str]]:
    """Split by a hash of the name, so the split is stable when images are added and never depends on a seed."""
    def bucket(name: str) -> float:
        return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    test = [n for n in names if bucket(n) < test_fraction]
    if not test and len(names) > 1:  # tiny sets: still hold one image out
        test = [min(names, key=bucket)]
    test_set = set(test)
    return [n for n in names if n not in test_set], test
