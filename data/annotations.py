"""Micro-expression annotation sheets (CASME II, SAMM, SMIC, CAS(ME)^3, MMEW) read into one table.

Every reader returns a list of :class:`MEClip`; :func:`to_rows` / :func:`write_annotation_csv` give the unified
table and :func:`build_me_summary` the N2ME ``{emotion: [clip ids]}`` dict.

Layouts: each dataset's sheet columns, frame rate, clip id and frame folder are in the dataset table,
catalog/datasets.py (``DATASETS``); header keys compare lower-case with spaces and punctuation removed, so
``Onset Frame`` == ``OnsetFrame``. SMIC has no sheet: :func:`read_smic` walks its folder tree. An Apex column is
optional everywhere (CAS(ME)^3 part C has none).

AU strings are parsed by :mod:`data.facs_codes`; the sheet machinery (layouts, header search, cells) is in
:mod:`data.annotation_sheets`.

Emotions: lower-cased as in the sheet (``others`` in CASME II, ``other`` in SAMM, ``positive``/``negative`` in
SMIC). :func:`build_me_summary` keeps only anger, disgust, fear, happiness, sadness, surprise (N2ME); the short
forms happy/sad/angry/... map onto them; others, other, repression, contempt, positive, negative are dropped.

Bad input never vanishes silently: a missing apex (``/``, ``-``, blank), a text cell with stray spaces, onset after
offset, an apex outside [onset, offset], an unparsed AU token or a number with a typo (``12O``) is recorded in
``MEClip.problems`` as ``<file>[<sheet>] row <n>, column '<header>': ...``. With ``strict=True`` a number that
cannot be read raises :class:`AnnotationError` instead. A sheet of no known layout raises ``ValueError`` naming the
columns found and the layouts known.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

from catalog.datasets import DATASETS, EMOTION_ALIASES
from data.annotation_sheets import (  # re-exported: the annotation API callers import from here
    CSV_COLUMNS,
    SUMMARY_EMOTIONS,
    AnnotationError,
    MEClip,
    dataset_from_name,
    order_problems,
    parse_frame,
    read_sheet,
)
from data.facs_codes import AUCode, format_aus, parse_aus

SMIC = DATASETS["smic"]

__all__ = ["CSV_COLUMNS", "SUMMARY_EMOTIONS", "AUCode", "AnnotationError", "MEClip",
           "all_problems", "build_me_summary", "dataset_from_name", "format_aus", "order_problems", "parse_aus",
           "parse_frame", "read_annotations", "read_casme2", "read_casme3", "read_mmew", "read_samm", "read_smic",
           "summary_emotion", "to_rows", "write_annotation_csv"]


# ---------------------------------------------------------------------------------------------------- readers

def read_casme2(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return read_sheet(path, "casme2", sheet, strict)


def read_samm(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return read_sheet(path, "samm", sheet, strict)


def read_casme3(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return read_sheet(path, "casme3", sheet, strict)


def read_mmew(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return read_sheet(path, "mmew", sheet, strict)


def read_smic(root: str | Path, fps: float = SMIC.fps) -> list[MEClip]:
    """Clips from the SMIC folder tree ``{subject}/micro/{positive,negative,surprise}/{clip}/`` (no frames, no AUs)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"SMIC root {root} is not a folder")
    clips = []
    for subject_dir in sorted(p for p in root.iterdir() if (p / "micro").is_dir()):
        for class_dir in sorted(p for p in (subject_dir / "micro").iterdir() if p.is_dir()):
            if class_dir.name.lower() not in SMIC.emotions:
                warnings.warn(f"SMIC: {class_dir} is not one of {SMIC.emotions}; skipped", stacklevel=2)
                continue
            clips += [_smic_clip(subject_dir.name, class_dir.name, d, fps)
                      for d in sorted(class_dir.iterdir()) if d.is_dir()]
    if not clips:
        classes = ",".join(SMIC.emotions)
        raise ValueError(f"no SMIC clips under {root}: expected {{subject}}/micro/{{{classes}}}/{{clip}}/")
    return clips


def _smic_clip(subject: str, class_name: str, clip_dir: Path, fps: float) -> MEClip:
    clip_id, frame_dir = SMIC.paths(subject, clip_dir.name, class_name, None)
    return MEClip(SMIC.key, subject, clip_dir.name, None, None, None, [], "", class_name.lower(), fps, frame_dir,
                  clip_id, source=str(clip_dir))


def read_annotations(path: str | Path, dataset: str | None = None, **options) -> list[MEClip]:
    """Any known sheet (or a SMIC folder). Without `dataset`: a folder is SMIC; a sheet's dataset comes from its file
    name when the header fits, else from the header alone; neither -> ValueError listing the known formats."""
    path = Path(path)
    if dataset is None and path.is_dir():
        dataset = "smic"
    if dataset == "smic":
        return read_smic(path, **options)
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {tuple(DATASETS)}")
    return read_sheet(path, dataset, options.pop("sheet", None), options.pop("strict", False), **options)


# ---------------------------------------------------------------------------------------------------- outputs

def to_rows(clips: list[MEClip]) -> list[dict]:
    """The unified table, one dict per clip with the CSV_COLUMNS keys (problems joined by '; ')."""
    return [{"subject": c.subject, "clip": c.clip, "clip_id": c.clip_id, "dataset": c.dataset, "onset": c.onset,
             "apex": c.apex, "offset": c.offset, "aus": c.aus, "aus_raw": c.aus_raw, "emotion": c.emotion,
             "fps": c.fps, "frame_dir": c.frame_dir, "problems": "; ".join(c.problems)} for c in clips]


def write_annotation_csv(clips: list[MEClip], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(to_rows(clips))
    return path


def all_problems(clips: list[MEClip]) -> list[str]:
    return [problem for clip in clips for problem in clip.problems]


def summary_emotion(emotion: str) -> str | None:
    """One of SUMMARY_EMOTIONS for a sheet label, or None for labels N2ME drops (others, repression, contempt...)."""
    label = EMOTION_ALIASES.get(emotion.strip().lower(), emotion.strip().lower())
    return label if label in SUMMARY_EMOTIONS else None


def build_me_summary(clips: list[MEClip]) -> dict[str, list[str]]:
    """N2ME ``{emotion: [clip ids]}`` with all six emotions as keys (lists may be empty), clips in input order."""
    summary: dict[str, list[str]] = {emotion: [] for emotion in SUMMARY_EMOTIONS}
    for clip in clips:
        label = summary_emotion(clip.emotion)
        if label is not None:
            summary[label].append(clip.clip_id)
    return summary


def main(argv: list[str] | None = None) -> int:
    """python -m data.annotations SHEET [SHEET ...] --out clips.csv [--summary me_summary.json]"""
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(description="Read ME annotation sheets (CASME II, SAMM, CAS(ME)^3, MMEW xlsx; a "
                                            "SMIC root folder) into one CSV table, and N2ME's me_summary.json")
    p.add_argument("sheets", nargs="+", help="annotation sheets (.xlsx) or a SMIC root folder")
    p.add_argument("--out", required=True, help="unified clip table (.csv)")
    p.add_argument("--summary", default=None, help="also write N2ME's me_summary.json here")
    args = p.parse_args(argv)
    clips = []
    for sheet in args.sheets:
        path = Path(sheet)
        clips += read_smic(path) if path.is_dir() else read_annotations(path)
    write_annotation_csv(clips, args.out)
    for problem in all_problems(clips):
        print(f"note: {problem}", file=sys.stderr)
    if args.summary:
        Path(args.summary).write_text(json.dumps(build_me_summary(clips), indent=1) + "\n")
    print(f"{len(clips)} clips -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
