"""The one table of the micro-expression datasets: what every reader, the options and the metrics know about each.

One spelling per dataset, used in files, flags and docs: ``casme2`` (the dataset's own file names: CASME2_RAW,
CASME2-coding-*.xlsx; ULME-GAN's MEGC folders casme2_*), ``samm``, ``smic``, ``casme3`` (CAS(ME)^3), ``mmew``.
Other spellings found in folder and file names (``casme_ii``, ``CASME II``, ``cas(me)^3``) are matched by
``name_pattern``; the one that stays visible is N2ME's flag ``--casme_ii_aus_dir`` (``aus_dir_flag``), kept because
N2ME's flags keep their meaning.

Sources: frame rates and sheet columns from the datasets' papers and coding sheets as N2ME reads them
(/work/shared/reference/seed-systems.md); clip ids ``c_`` / ``s_`` / ``m_`` follow N2ME, ``c3_`` and ``smic_`` are
this toolkit's choice (N2ME has none for them). Adding a dataset: one ``Dataset`` entry here, plus its sheet reader
in data/annotation_sheets.py when its sheet has a layout none of these has (docs/code_tour.md, "dataset").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SheetLayout:
    """An annotation sheet: field -> header text as the dataset writes it, and a column only this layout has."""

    columns: dict[str, str]
    marker: str | None = None  # None: recognised by its columns alone


@dataclass(frozen=True)
class Dataset:
    key: str  # the one spelling (files, flags, docs)
    title: str  # as the dataset's authors write it
    name_pattern: str  # regex finding the dataset in a lower-cased file or folder name
    fps: float  # native frame rate
    clip_prefix: str  # start of a clip id (``clip_id`` below)
    clip_id: str  # format of a clip id: {sub} (subject as the frame folders write it), {subject}, {clip}, {onset_}
    frame_dir: str  # format of the clip's frame folder under the dataset root (same fields + {emotion})
    emotions: tuple[str, ...]  # the emotion labels the dataset uses, lower case
    sheet: SheetLayout | None  # None: no sheet (SMIC: the folder tree is the annotation)
    subject_width: int = 0  # Excel turns '006' into 6: the digits to pad back
    subject_folder: str = "{subject}"  # how a subject number appears in frame folders and ids ({sub})
    aus_dir_flag: str = ""  # the test-mode flag naming its per-clip AU folder (N2ME's spelling)
    notes: tuple[str, ...] = field(default=())

    def sub(self, subject: str) -> str:
        padded = f"{int(subject):0{self.subject_width}d}" if subject.isdigit() else subject
        return self.subject_folder.format(subject=padded)

    def paths(self, subject: str, clip: str, emotion: str, onset: int | None) -> tuple[str, str]:
        """(clip id, frame folder) of one annotated clip."""
        fields = {"sub": self.sub(subject), "subject": subject, "clip": clip, "emotion": emotion,
                  "onset_": "" if onset is None else f"_{onset}"}
        return self.clip_id.format(**fields), self.frame_dir.format(**fields)


_FRAME_COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
                  "offset": "OffsetFrame", "aus": "Action Units", "emotion": "Estimated Emotion"}

# Order matters twice: name matching tries casme3 before casme2 ("casme3" is no CASME II), and sheet detection
# tries the layouts with a marker column first.
DATASETS: dict[str, Dataset] = {d.key: d for d in (
    Dataset("casme3", "CAS(ME)^3", r"cas\(?me\)?\s*\^?\s*_?3|casme\s*3", 30, "c3_", "c3_{subject}_{clip}{onset_}",
            "{subject}/{clip}", ("happy", "disgust", "fear", "anger", "sad", "surprise", "others"),
            SheetLayout({"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex",
                         "offset": "Offset", "aus": "AU", "emotion": "emotion"}),
            aus_dir_flag="casme3_aus_dir",
            notes=("part A; one Filename (a long task video) holds several MEs, so the id carries the onset",
                   "part C has no Apex column")),
    Dataset("samm", "SAMM", r"samm", 200, "s_", "s_{clip}", "{subject}/{clip}",
            ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "other"),
            SheetLayout(_FRAME_COLUMNS, "Inducement Code"), subject_width=3, aus_dir_flag="samm_aus_dir",
            notes=("header row searched below a notes block",)),
    Dataset("mmew", "MMEW", r"mmew", 90, "m_", "m_{clip}", "Micro_Expression/{emotion}/{clip}",
            ("happiness", "surprise", "anger", "disgust", "fear", "sadness", "others"),
            SheetLayout(_FRAME_COLUMNS, "remarks"), aus_dir_flag="mmew_aus_dir"),
    Dataset("casme2", "CASME II", r"casme[\s_-]*(?:2|ii)", 200, "c_", "c_{sub}_{clip}", "{sub}/{clip}",
            ("happiness", "disgust", "repression", "surprise", "fear", "sadness", "others"),
            SheetLayout(_FRAME_COLUMNS), subject_width=2, subject_folder="sub{subject}",
            aus_dir_flag="casme_ii_aus_dir"),
    Dataset("smic", "SMIC", r"smic", 100, "smic_", "smic_{clip}", "{subject}/micro/{emotion}/{clip}",
            ("positive", "negative", "surprise"), None, aus_dir_flag="smic_aus_dir",
            notes=("HS camera 100 fps; VIS and NIR 25 fps (read_smic(root, fps=25))",
                   "no sheet: folders {subject}/micro/{positive,negative,surprise}/{clip}/")),
)}

DEFAULT_FPS = 30  # a clip whose name names no dataset

# Emotion labels of the datasets and the metrics' groups, folded to one word per emotion.
EMOTION_ALIASES = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise",
                   "disgusted": "disgust", "fearful": "fear", "afraid": "fear", "other": "others"}


def dataset_in_name(name: str) -> Dataset | None:
    """The dataset a file or folder name names ('CASME2-coding-x.xlsx', 'casme2_Positive_asianFemale'), or None."""
    lowered = str(name).lower()
    return next((d for d in DATASETS.values() if re.search(d.name_pattern, lowered)), None)


def native_fps(name: str) -> float:
    """The native frame rate of the dataset a name names, else ``DEFAULT_FPS``."""
    found = dataset_in_name(name)
    return found.fps if found is not None else DEFAULT_FPS


def dataset_of_clip_id(clip_id: str) -> tuple[Dataset, str]:
    """(dataset, the rest of the id) from an N2ME-style clip id ('c_sub01_EP02_01f' -> casme2, 'sub01_EP02_01f')."""
    for d in sorted(DATASETS.values(), key=lambda d: -len(d.clip_prefix)):  # 'c3_' before 'c_'
        if clip_id.startswith(d.clip_prefix):
            return d, clip_id[len(d.clip_prefix):]
    prefixes = ", ".join(d.clip_prefix for d in DATASETS.values())
    raise ValueError(f"clip id '{clip_id}' has no known dataset prefix ({prefixes})")


def fps_summary() -> str:
    """'CASME II 200, SAMM 200, ...' for help texts."""
    return ", ".join(f"{d.title} {d.fps:g}" for d in DATASETS.values())
