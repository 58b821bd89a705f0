"""Train/test id lists: ULME ``train_ids.csv`` (names with extension) and N2ME ``train_ids.txt``."""
from __future__ import annotations

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
