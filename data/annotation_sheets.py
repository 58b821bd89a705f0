"""Reading ME annotation sheets (xlsx/csv): the known layouts, the header search, cells and frame numbers,
one :class:`MEClip` per row. The public entry points are in :mod:`data.annotations`."""
from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from catalog.datasets import DATASETS, Dataset, dataset_in_name
from data.facs_codes import MISSING_CELLS, AUCode, cell_text, format_aus, parse_aus

# N2ME's me_summary.json keeps these six (the other labels: others, repression, contempt... are dropped).
SUMMARY_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
HEADER_SEARCH_ROWS = 60  # the SAMM notes block is 13 rows; leave room for longer ones
CSV_COLUMNS = ("subject", "clip", "clip_id", "dataset", "onset", "apex", "offset", "aus", "aus_raw", "emotion",
               "fps", "frame_dir", "problems")


class AnnotationError(ValueError):
    """A cell that cannot be read (raised only with ``strict=True``)."""


# ---------------------------------------------------------------------------------------------------- cells

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


@dataclass(frozen=True)
class _Layout:
    """A dataset's sheet (catalog/datasets.py: columns, marker column) as the reader uses it."""

    dataset: Dataset

    @property
    def columns(self) -> dict[str, str]:
        return self.dataset.sheet.columns

    @property
    def marker(self) -> str | None:
        return self.dataset.sheet.marker

    def key(self, name: str) -> str:
        return header_key(self.columns[name])

    @property
    def required(self) -> set[str]:
        keys = {header_key(h) for f, h in self.columns.items() if f != "apex"}  # part C has no apex
        return keys | ({header_key(self.marker)} if self.marker else set())

    def describe(self) -> str:
        return f"{self.dataset.key} ({', '.join(self.columns.values())}{', ' + self.marker if self.marker else ''})"


# Detection order: the layouts with a marker column first (a SAMM sheet also has every CASME II column).
LAYOUTS = {d.key: _Layout(d) for d in sorted((d for d in DATASETS.values() if d.sheet is not None),
                                             key=lambda d: d.sheet.marker is None)}


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
    found = dataset_in_name(Path(path).name)
    return found.key if found is not None else None


def read_sheet(path: str | Path, dataset: str | None, sheet: str | None, strict: bool,
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
                              layout.dataset.fps if fps is None else fps)
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
    clip_id, frame_dir = layout.dataset.paths(subject, clip, emotion, frames["onset"])
    return MEClip(layout.dataset.key, subject, clip, frames["onset"], frames["apex"], frames["offset"], codes, aus_raw,
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


def _subject_text(value, dataset: Dataset) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):  # Excel turns '006' typed without a text format into 6: pad it back
        return str(value).zfill(dataset.subject_width)
    return cell_text(value)


def order_problems(onset: int | None, apex: int | None, offset: int | None) -> list[str]:
    """Onset after offset, apex outside [onset, offset] (checked on what is known)."""
    problems = []
    if onset is not None and offset is not None and onset > offset:
        problems.append(f"onset {onset} > offset {offset}")
    if apex is not None and ((onset is not None and apex < onset) or (offset is not None and apex > offset)):
        problems.append(f"apex {apex} outside [onset, offset] = [{onset}, {offset}]")
    return problems
