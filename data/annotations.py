"""Micro-expression annotation sheets (CASME II, SAMM, SMIC, CAS(ME)^3, MMEW) read into one table.

Every reader returns a list of :class:`MEClip`; :func:`to_rows` / :func:`write_csv` give the unified table and
:func:`build_me_summary` the N2ME ``{emotion: [clip ids]}`` dict.

Layouts (header keys compare lower-case with spaces and punctuation removed, so ``Onset Frame`` == ``OnsetFrame``):

- casme2: Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion; 200 fps;
  frame_dir ``sub{NN}/{Filename}``, clip_id ``c_sub{NN}_{Filename}`` (N2ME).
- samm: as casme2 plus Inducement Code, header row searched below the notes block; 200 fps;
  ``{subject}/{Filename}``, ``s_{Filename}`` (N2ME).
- mmew: as casme2 plus remarks; 90 fps; ``Micro_Expression/{emotion}/{Filename}``, ``m_{Filename}`` (N2ME).
- casme3 (part A): Subject, Filename, Onset, Apex, Offset, AU, emotion; 30 fps; ``{subject}/{Filename}``,
  ``c3_{subject}_{Filename}_{onset}``.
- smic: no sheet, folders ``{subject}/micro/{positive,negative,surprise}/{clip}/``; 100 fps (*);
  ``{subject}/micro/{class}/{clip}``, ``smic_{clip}``.

(* SMIC HS is 100 fps, VIS/NIR 25 fps: ``read_smic(root, fps=25)``.) The CAS(ME)^3 and SMIC ids are this toolkit's
choice (N2ME has no convention for them); CAS(ME)^3 carries the onset because one Filename (a long task video) holds
several MEs. An Apex column is optional everywhere (CAS(ME)^3 part C has none).

AU strings (:func:`parse_aus`): terms are joined by ``+``, ``,`` or ``;`` (full-width forms are folded by Unicode
NFKC first). A code is ``[prefix][AU]number[intensity]``, case-insensitive:

- prefix ``L``/``R`` = unilateral left/right, ``A`` = asymmetric (both sides, one stronger: the SAMM key),
  ``T``/``B`` = top/bottom lip (FACS, SAMM writes ``T18``, ``B18``); stored in :attr:`AUCode.side`;
- intensity suffix ``A`` (trace) .. ``E`` (maximum), so ``A9E`` is asymmetric AU9 at intensity E;
- ``ref(10)`` (SAMM) is kept as AU10 with ``ref=True``: it counts as an AU of the clip (the MEGC ground truth of
  SAMM 018_3_1 ``A9E+ref(10)`` is AU9+10);
- alternatives ``4 or 7``, ``(R6 or R12)``, ``A/L12`` (SAMM: "/" = or), ``10A/B`` (a bare letter borrows the number
  of its neighbour): the FIRST alternative is the code, the others are kept in :attr:`AUCode.alternatives` and
  :attr:`AUCode.uncertain` is true. "or" binds tighter than "+": ``(R6 or R12)+R15`` is two AUs, the first uncertain.
- anything else (``soft focus``, ``M60``) goes to an ``unparsed`` list and into the clip's ``problems``.

Normalised AU string (:func:`format_aus`, the ``aus`` column): codes sorted by AU number then prefix, written as in
FACS without an ``AU`` prefix and joined by ``+``: ``4+7+L10``, ``7C+A12B``, ``A9E+ref(10)``, ``(R6 or R12)+R15``.
The sheet's own text stays in ``aus_raw``.

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
import re
import unicodedata
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

DATASETS = ("casme2", "samm", "smic", "casme3", "mmew")
NATIVE_FPS = {"casme2": 200, "samm": 200, "smic": 100, "casme3": 30, "mmew": 90}
SUMMARY_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
EMOTION_ALIASES = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise",
                   "disgusted": "disgust", "fearful": "fear", "afraid": "fear"}
SMIC_CLASSES = ("positive", "negative", "surprise")
MISSING_CELLS = {"", "/", "-", "--", "\u2013", "\u2014", "?", "n/a", "na", "none"}
HEADER_SEARCH_ROWS = 60  # the SAMM notes block is 13 rows; leave room for longer ones
# Excel turns '006' typed without a text format into 6: put back the dataset's subject width.
SUBJECT_WIDTH = {"casme2": 2, "samm": 3}
CSV_COLUMNS = ("subject", "clip", "clip_id", "dataset", "onset", "apex", "offset", "aus", "aus_raw", "emotion",
               "fps", "frame_dir", "problems")


class AnnotationError(ValueError):
    """A cell that cannot be read (raised only with ``strict=True``)."""


# ---------------------------------------------------------------------------------------------------- AU codes

@dataclass(frozen=True)
class AUCode:
    number: int
    side: str | None = None  # 'L', 'R' unilateral; 'A' asymmetric; 'T', 'B' top/bottom lip
    intensity: str | None = None  # FACS 'A'..'E'
    ref: bool = False  # SAMM ref(N)
    alternatives: tuple[AUCode, ...] = ()  # the other readings of an "or"; this code is the first one

    @property
    def uncertain(self) -> bool:
        return bool(self.alternatives)

    def single(self) -> str:
        """This code alone, without its alternatives: 'L10', '12B', 'ref(10)'."""
        text = f"{self.side or ''}{self.number}{self.intensity or ''}"
        return f"ref({text})" if self.ref else text

    def __str__(self) -> str:
        if not self.alternatives:
            return self.single()
        return "(" + " or ".join([self.single()] + [alt.single() for alt in self.alternatives]) + ")"


_CODE_RE = re.compile(r"(?:AU\s*)?(?P<side>[LRATB])?\s*(?:AU\s*)?(?P<number>[0-9]{1,3})\s*(?P<intensity>[A-E])?")
_REF_RE = re.compile(r"REF\s*\((?P<inner>.*)\)")
_TERM_SEPARATORS = re.compile(r"[+,;\u3001]")  # NFKC leaves the ideographic comma alone
_OR_SEPARATORS = re.compile(r"\s+or\s+|/", re.IGNORECASE)


def parse_aus(value) -> tuple[list[AUCode], list[str]]:
    """AU codes of one sheet cell, in sheet order, and the tokens that are not AU codes."""
    text = cell_text(value)
    if text.lower() in MISSING_CELLS:
        return [], []
    codes, unparsed = [], []
    for term in _split_outside_parens(text, _TERM_SEPARATORS):
        term = term.strip()
        if not term:  # '12+' or '4++7': nothing lost
            continue
        found = _parse_term(term)
        if found is None:
            unparsed.append(term)
        else:
            codes.extend(found)
    return codes, unparsed


def format_aus(codes: list[AUCode]) -> str:
    """Canonical AU string: sorted by AU number then prefix, '+'-joined (see the module docstring)."""
    return "+".join(str(c) for c in sorted(codes, key=lambda c: (c.number, c.side or "", c.ref)))


def _parse_term(term: str) -> list[AUCode] | None:
    """One '+'-term: a code, a group of alternatives, or (fallback) space-separated codes like 'AU4 AU7'."""
    body = _strip_outer_parens(term)
    options = _parse_alternatives([p.strip() for p in _split_outside_parens(body, _OR_SEPARATORS)])
    if options:
        return [replace(options[0], alternatives=tuple(options[1:]))]
    words = body.split()
    if len(words) > 1:
        single = [_parse_code(w) for w in words]
        if all(single):
            return single
    return None


def _parse_alternatives(pieces: list[str]) -> list[AUCode] | None:
    """Codes for 'or'-pieces. A bare letter borrows its neighbour's number: 'A/L12' -> A12|L12, '10A/B' -> 10A|10B."""
    codes = [_parse_code(p) for p in pieces]
    for i, piece in enumerate(pieces):
        letter = piece.upper()
        if codes[i] is not None or len(letter) != 1:
            continue
        before = next((c for c in reversed(codes[:i]) if c is not None), None)
        after = next((c for c in codes[i + 1:] if c is not None), None)
        if before is not None and letter in "ABCDE":  # a trailing letter is an intensity
            codes[i] = replace(before, intensity=letter)
        elif after is not None and letter in "LRATB":  # a leading letter is a prefix
            codes[i] = replace(after, side=letter)
    return codes if codes and all(c is not None for c in codes) else None


def _parse_code(piece: str) -> AUCode | None:
    text = piece.strip().upper()
    ref = _REF_RE.fullmatch(text)
    if ref:
        inner = _parse_code(ref.group("inner"))
        return replace(inner, ref=True) if inner else None
    match = _CODE_RE.fullmatch(text)
    if not match:
        return None
    return AUCode(int(match.group("number")), match.group("side"), match.group("intensity"))


def _split_outside_parens(text: str, separators: re.Pattern) -> list[str]:
    """Split at separators that are not inside parentheses, so 'ref(7B)' and '(R6 or R12)' stay whole."""
    parts, start = [], 0
    for match in separators.finditer(text):
        depth = text.count("(", 0, match.start()) - text.count(")", 0, match.start())
        if depth == 0:
            parts.append(text[start:match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts


def _strip_outer_parens(text: str) -> str:
    """'(R6 or R12)' -> 'R6 or R12', but 'ref(10)' and '(4)+(7)' are left alone."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _closing_paren(text) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing_paren(text: str) -> int:
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return i
    return -1


# ---------------------------------------------------------------------------------------------------- cells

def cell_text(value) -> str:
    """A cell as text: full-width characters folded (NFKC), whole floats without '.0', None as ''."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


def parse_frame(value) -> tuple[int | None, str | None]:
    """(frame, note). Missing cells give (None, note); a typo ('12O', '3.5') raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a frame number: {value!r}")
    if isinstance(value, int):
        return value, None
    if isinstance(value, float):
        if value.is_integer():
            return int(value), None
        raise ValueError(f"not a whole frame number: {value!r}")
    raw = "" if value is None else unicodedata.normalize("NFKC", str(value))
    text = raw.strip()
    if text.lower() in MISSING_CELLS:
        return None, f"missing ({value!r})" if text else "blank"
    if re.fullmatch(r"[0-9]+", text):
        # A number stored as text is fine; stray spaces around it are worth a note, not a lost row.
        return int(text), (f"stray spaces in {value!r}, read as {int(text)}" if text != raw else None)
    if re.fullmatch(r"[0-9]+\s*\?", text):  # SAMM key: '?' = unclear offset
        return int(text.rstrip("? ")), f"marked uncertain ({value!r})"
    raise ValueError(f"not a frame number: {value!r}")


# ---------------------------------------------------------------------------------------------------- clips

@dataclass
class MEClip:
    dataset: str
    subject: str
    clip: str
    onset: int | None
    apex: int | None
    offset: int | None
    action_units: list[AUCode]
    aus_raw: str
    emotion: str
    fps: float
    frame_dir: str
    clip_id: str
    unparsed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    source: str = ""  # '<file>[<sheet>] row <n>' or the clip folder

    @property
    def aus(self) -> str:
        return format_aus(self.action_units)

    @property
    def au_numbers(self) -> list[int]:
        """Sorted AU numbers (first alternative of each code, ref codes included)."""
        return sorted({c.number for c in self.action_units})


def _casme2_paths(subject: str, clip: str, emotion: str, onset: int | None) -> tuple[str, str]:
    sub = f"sub{int(subject):02d}" if subject.isdigit() else f"sub{subject}"
    return f"c_{sub}_{clip}", f"{sub}/{clip}"


def _samm_paths(subject: str, clip: str, emotion: str, onset: int | None) -> tuple[str, str]:
    return f"s_{clip}", f"{subject}/{clip}"


def _mmew_paths(subject: str, clip: str, emotion: str, onset: int | None) -> tuple[str, str]:
    return f"m_{clip}", f"Micro_Expression/{emotion}/{clip}"


def _casme3_paths(subject: str, clip: str, emotion: str, onset: int | None) -> tuple[str, str]:
    suffix = "" if onset is None else f"_{onset}"
    return f"c3_{subject}_{clip}{suffix}", f"{subject}/{clip}"


@dataclass(frozen=True)
class _Layout:
    dataset: str
    columns: dict[str, str]  # field -> header text as the dataset writes it
    marker: str | None  # a column only this layout has (None: recognised by its columns alone)
    paths: Callable[[str, str, str, int | None], tuple[str, str]]  # -> (clip_id, frame_dir)

    def key(self, name: str) -> str:
        return header_key(self.columns[name])

    @property
    def required(self) -> set[str]:
        keys = {header_key(h) for f, h in self.columns.items() if f != "apex"}  # part C has no apex
        return keys | ({header_key(self.marker)} if self.marker else set())

    def describe(self) -> str:
        return f"{self.dataset} ({', '.join(self.columns.values())}{', ' + self.marker if self.marker else ''})"


_FRAME_COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
                  "offset": "OffsetFrame", "aus": "Action Units", "emotion": "Estimated Emotion"}
LAYOUTS = {  # detection order: the layouts with a marker column first
    "samm": _Layout("samm", _FRAME_COLUMNS, "Inducement Code", _samm_paths),
    "mmew": _Layout("mmew", _FRAME_COLUMNS, "remarks", _mmew_paths),
    "casme3": _Layout("casme3", {"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex",
                                 "offset": "Offset", "aus": "AU", "emotion": "emotion"}, None, _casme3_paths),
    "casme2": _Layout("casme2", _FRAME_COLUMNS, None, _casme2_paths),
}
_NAME_HINTS = (("casme3", r"cas\(?me\)?\s*\^?\s*3|casme\s*3"), ("casme2", r"casme[\s_-]*(?:2|ii)"),
               ("samm", r"samm"), ("mmew", r"mmew"), ("smic", r"smic"))


def header_key(text) -> str:
    return re.sub(r"[^a-z0-9]", "", cell_text(text).lower())


@dataclass
class _Table:
    name: str  # '<file>[<sheet>]' for messages
    header: list[str]
    header_row: int  # 1-based sheet row
    rows: list[tuple[int, tuple]]  # (1-based sheet row, cell values)


def _load_table(path: Path, sheet: str | None = None) -> _Table:
    """The first worksheet (or `sheet`) with a header row containing 'Filename', found by search, not position."""
    if path.suffix.lower() == ".xls":
        raise ValueError(f"{path.name}: old .xls workbooks are not read; save it as .xlsx")
    import openpyxl  # deferred: only the sheet readers need it

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        names = [sheet] if sheet else workbook.sheetnames
        first_rows = {}
        for name in names:
            rows = list(workbook[name].iter_rows(values_only=True))
            header_index = _find_header(rows)
            if header_index is not None:
                numbered = list(enumerate(rows, start=1))[header_index + 1:]
                header = [cell_text(v) for v in rows[header_index]]
                return _Table(f"{path.name}[{name}]", header, header_index + 1, numbered)
            first_rows[name] = next(([cell_text(v) for v in r if v is not None] for r in rows if any(r)), [])
    finally:
        workbook.close()
    raise ValueError(f"{path.name}: no header row with 'Filename' in the first {HEADER_SEARCH_ROWS} rows of sheets "
                     f"{names}; columns found: {first_rows}; known formats: {_known_formats()}")


def _find_header(rows: list[tuple]) -> int | None:
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if any(header_key(v) == "filename" for v in row):
            return i
    return None


def _known_formats() -> str:
    return "; ".join(layout.describe() for layout in LAYOUTS.values()) + "; smic (folder tree, no sheet)"


def _choose_layout(table: _Table, path: Path, dataset: str | None) -> _Layout:
    keys = {header_key(h) for h in table.header} - {""}
    if dataset is not None:
        if dataset not in LAYOUTS:
            raise ValueError(f"unknown sheet dataset {dataset!r}; known: {sorted(LAYOUTS)} (smic: use read_smic)")
        missing = [h for f, h in LAYOUTS[dataset].columns.items()
                   if f != "apex" and header_key(h) not in keys]
        if missing:
            raise ValueError(f"{table.name} is not a {dataset} sheet: columns {missing} missing; columns found: "
                             f"{[h for h in table.header if h]}; known formats: {_known_formats()}")
        return LAYOUTS[dataset]
    hint = dataset_from_name(path)
    if hint in LAYOUTS and LAYOUTS[hint].required <= keys:
        return LAYOUTS[hint]
    for layout in LAYOUTS.values():
        if layout.required <= keys:
            return layout
    raise ValueError(f"{table.name}: not a known ME annotation layout; columns found: "
                     f"{[h for h in table.header if h]}; known formats: {_known_formats()}")


def dataset_from_name(path: str | Path) -> str | None:
    """Dataset named by a file or folder name ('CASME2-coding-*.xlsx' -> 'casme2'), or None."""
    name = Path(path).name.lower()
    return next((dataset for dataset, pattern in _NAME_HINTS if re.search(pattern, name)), None)


def _read_sheet(path: str | Path, dataset: str | None, sheet: str | None, strict: bool,
                fps: float | None = None) -> list[MEClip]:
    path = Path(path)
    table = _load_table(path, sheet)
    layout = _choose_layout(table, path, dataset)
    positions = {}
    for name in layout.columns:
        column = next((i for i, h in enumerate(table.header) if header_key(h) == layout.key(name)), None)
        if column is not None:
            positions[name] = column
    clips = []
    for row_number, values in table.rows:
        if not any(cell_text(v) for v in values):
            continue
        clip = _clip_from_row(layout, table, positions, row_number, values, strict,
                              NATIVE_FPS[layout.dataset] if fps is None else fps)
        if clip is not None:
            clips.append(clip)
    return clips


def _clip_from_row(layout: _Layout, table: _Table, positions: dict[str, int], row_number: int, values: tuple,
                   strict: bool, fps: float) -> MEClip | None:
    where = f"{table.name} row {row_number}"

    def cell(name: str):
        column = positions.get(name)
        return values[column] if column is not None and column < len(values) else None

    def note(name: str, message: str) -> str:
        return f"{where}, column '{table.header[positions[name]]}': {message}"

    subject, clip = _subject_text(cell("subject"), layout.dataset), cell_text(cell("clip"))
    if not subject or not clip:
        message = f"{where}: no Subject or Filename, row skipped"
        if strict:
            raise AnnotationError(message)
        warnings.warn(message, stacklevel=4)
        return None
    problems: list[str] = []
    frames = {name: _frame_cell(cell(name), name in positions, lambda m, n=name: note(n, m), problems, strict)
              for name in ("onset", "apex", "offset")}
    problems += [f"{where}: {p}" for p in order_problems(frames["onset"], frames["apex"], frames["offset"])]
    codes, unparsed = parse_aus(cell("aus"))
    aus_raw = cell_text(cell("aus"))
    if not codes and not unparsed:
        problems.append(note("aus", f"no AU codes ({aus_raw!r})" if aus_raw else "no AU codes (blank)"))
    problems += [note("aus", f"unparsed AU token {token!r} in {aus_raw!r}") for token in unparsed]
    emotion = " ".join(cell_text(cell("emotion")).lower().split())
    if not emotion:
        problems.append(note("emotion", "blank emotion"))
    clip_id, frame_dir = layout.paths(subject, clip, emotion, frames["onset"])
    return MEClip(layout.dataset, subject, clip, frames["onset"], frames["apex"], frames["offset"], codes, aus_raw,
                  emotion, fps, frame_dir, clip_id, unparsed, problems, where)


def _frame_cell(value, present: bool, note, problems: list[str], strict: bool) -> int | None:
    """A frame cell; notes and typos go to `problems` (a typo raises with strict)."""
    if not present:  # the layout has no such column (CAS(ME)^3 part C apex): nothing to report per row
        return None
    try:
        frame, message = parse_frame(value)
    except ValueError as error:
        if strict:
            raise AnnotationError(note(str(error))) from None
        frame, message = None, str(error)
    if message:
        problems.append(note(message))
    return frame


def _subject_text(value, dataset: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return str(value).zfill(SUBJECT_WIDTH.get(dataset, 0))
    return cell_text(value)


def order_problems(onset: int | None, apex: int | None, offset: int | None) -> list[str]:
    """Onset after offset, apex outside [onset, offset] (checked on what is known)."""
    problems = []
    if onset is not None and offset is not None and onset > offset:
        problems.append(f"onset {onset} > offset {offset}")
    if apex is not None and ((onset is not None and apex < onset) or (offset is not None and apex > offset)):
        problems.append(f"apex {apex} outside [onset, offset] = [{onset}, {offset}]")
    return problems


# ---------------------------------------------------------------------------------------------------- readers

def read_casme2(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return _read_sheet(path, "casme2", sheet, strict)


def read_samm(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return _read_sheet(path, "samm", sheet, strict)


def read_casme3(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return _read_sheet(path, "casme3", sheet, strict)


def read_mmew(path: str | Path, sheet: str | None = None, strict: bool = False) -> list[MEClip]:
    return _read_sheet(path, "mmew", sheet, strict)


def read_smic(root: str | Path, fps: float = 100) -> list[MEClip]:
    """Clips from the SMIC folder tree ``{subject}/micro/{positive,negative,surprise}/{clip}/`` (no frames, no AUs)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"SMIC root {root} is not a folder")
    clips = []
    for subject_dir in sorted(p for p in root.iterdir() if (p / "micro").is_dir()):
        for class_dir in sorted(p for p in (subject_dir / "micro").iterdir() if p.is_dir()):
            if class_dir.name.lower() not in SMIC_CLASSES:
                warnings.warn(f"SMIC: {class_dir} is not one of {SMIC_CLASSES}; skipped", stacklevel=2)
                continue
            clips += [_smic_clip(subject_dir.name, class_dir.name, d, fps)
                      for d in sorted(class_dir.iterdir()) if d.is_dir()]
    if not clips:
        classes = ",".join(SMIC_CLASSES)
        raise ValueError(f"no SMIC clips under {root}: expected {{subject}}/micro/{{{classes}}}/{{clip}}/")
    return clips


def _smic_clip(subject: str, class_name: str, clip_dir: Path, fps: float) -> MEClip:
    return MEClip("smic", subject, clip_dir.name, None, None, None, [], "", class_name.lower(), fps,
                  f"{subject}/micro/{class_name}/{clip_dir.name}", f"smic_{clip_dir.name}", source=str(clip_dir))


_READERS = {"casme2": read_casme2, "samm": read_samm, "casme3": read_casme3, "mmew": read_mmew}


def read_annotations(path: str | Path, dataset: str | None = None, **options) -> list[MEClip]:
    """Any known sheet (or a SMIC folder). Without `dataset`: a folder is SMIC; a sheet's dataset comes from its file
    name when the header fits, else from the header alone; neither -> ValueError listing the known formats."""
    path = Path(path)
    if dataset is None and path.is_dir():
        dataset = "smic"
    if dataset == "smic":
        return read_smic(path, **options)
    if dataset is not None and dataset not in _READERS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {DATASETS}")
    return _read_sheet(path, dataset, options.pop("sheet", None), options.pop("strict", False), **options)


# ---------------------------------------------------------------------------------------------------- outputs

def to_rows(clips: list[MEClip]) -> list[dict]:
    """The unified table, one dict per clip with the CSV_COLUMNS keys (problems joined by '; ')."""
    return [{"subject": c.subject, "clip": c.clip, "clip_id": c.clip_id, "dataset": c.dataset, "onset": c.onset,
             "apex": c.apex, "offset": c.offset, "aus": c.aus, "aus_raw": c.aus_raw, "emotion": c.emotion,
             "fps": c.fps, "frame_dir": c.frame_dir, "problems": "; ".join(c.problems)} for c in clips]


def write_csv(clips: list[MEClip], path: str | Path) -> Path:
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
    write_csv(clips, args.out)
    for problem in all_problems(clips):
        print(f"note: {problem}", file=sys.stderr)
    if args.summary:
        Path(args.summary).write_text(json.dumps(build_me_summary(clips), indent=1) + "\n")
    print(f"{len(clips)} clips -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
