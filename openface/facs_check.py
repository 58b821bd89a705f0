"""The calibration clips' FACS codes: which AUs the datasets' coders saw move, and the onset and apex frames.

The MEGC2021 clips are CASME II and SAMM samples cut from onset to offset; the datasets' coding sheets, read by
``python -m data.annotations SHEETS... --out clips.csv``, name the AUs that move in each. A clip is matched to its
row by dataset, onset and offset frame (and, for SAMM, the subject in the frame names). This gives a second
reading of "the AUs that move": the coded ones, instead of every AU whose OpenFace curve spans 0.1.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from catalog.au_schema import OPENFACE_AUS

# One FACS token: an optional side or asymmetry letter (L, R, A, B ...), the AU number, an optional intensity
# letter (A..E): "L10", "A9E", "7C", "A12B". Anything else ("ref(10)", "24" unmeasured) is not counted.
TOKEN = re.compile(r"^[A-Z]?(\d+)[A-E]?$")


@dataclass(frozen=True)
class ClipCodes:
    aus: tuple[str, ...]  # coded AUs the estimator measures, OpenFace names
    apex: int  # frame index within the clip (0 = onset)
    label: str  # the sheet's clip id


def coded_aus(codes: str) -> tuple[str, ...]:
    found = []
    for token in codes.replace(",", "+").split("+"):
        match = TOKEN.match(token.strip())
        if match and f"AU{int(match.group(1)):02d}" in OPENFACE_AUS:
            found.append(f"AU{int(match.group(1)):02d}")
    return tuple(dict.fromkeys(found))


def _frame_number(name: str) -> tuple[str, int]:
    """(subject or "", frame number) from "crop_img121" (CASME II) or "022_3659" (SAMM)."""
    match = re.match(r"^(\d+)_(\d+)$", name)
    if match:
        return match.group(1), int(match.group(2))
    return "", int(re.findall(r"\d+", name)[-1])


def match_clip(clip_name: str, frames: list[str], rows: list[dict]) -> ClipCodes | None:
    dataset = clip_name.split("_")[0].lower()
    subject, first = _frame_number(frames[0])
    _, last = _frame_number(frames[-1])
    for row in rows:
        if row["dataset"].lower() != dataset or int(row["onset"]) != first or int(row["offset"]) != last:
            continue
        if subject and row["subject"].lstrip("0") != subject.lstrip("0"):
            continue
        return ClipCodes(coded_aus(row["aus"]), int(row["apex"]) - first, row["clip_id"])
    return None


def read_codes(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
