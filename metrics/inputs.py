"""What to evaluate: result sequences, their source clips and template faces, found on disk and paired by name.

Results (``--results``), any of:

- one test-mode result folder (``run.json`` + ``frames/``, written by ``main.py --mode test``);
- a batch (``for_megc2021.py`` output): every folder below with ``run.json`` + ``frames/``; ``index.csv`` rows that
  failed are listed as skipped;
- another system's outputs: any folder tree. One folder is one result: its frames (2+ images) when it has them,
  else each video file (.mp4 .avi .mov .mkv .webm .gif) in it, except videos named like a source or a comparison
  (``source.mp4``, ``compare.mp4``, ...; ULME-GAN keeps the real clip beside its frames), which are never results.
  A sequence's name is its folder name (a folder called ``imgs`` or ``frames`` takes its parent's name) or the
  video's file name without extension. Videos of one name in one folder (``target.mp4`` and ``target.gif``, as
  test mode writes them) are one result: the first of .mp4 .avi .mov .mkv .webm .gif. A batch's own files
  (``contact_sheet*.png``, ``index*.csv``) are never a result.
- a run folder whose ``run.json`` cannot be read is a failed result naming the file; the others are scored.

Sources (``--sources``) are found the same way (``imgs2/`` and ``csvs*/`` folders are skipped: the ULME-GAN layout
``<pair>/imgs/`` names the clip after its pair folder). Templates (``--templates``): every image in the tree; an image
in ``<pair>/imgs2/`` is also known by the pair folder's name.

Matching rule (``match``), case-insensitive: a candidate named K matches a result named R when K == R or K appears in
R between separators (start/end of name, ``_ - . space /``): result ``casme2_Positive_asianFemale_mygan`` matches source
``casme2_Positive_asianFemale``. The longest matching K wins; two different candidates of that length are ambiguous
and neither is used (reported). A template is also known by the tails of its file stem (``normalized_asianFemale``
answers to ``asianFemale``). A ``--sources``/``--templates`` that is itself one sequence / one image pairs with every
result. For a test-mode run, the source frames and template recorded in ``run.json`` are used when they still exist;
``--sources``/``--templates`` are searched by the run's pair and clip names otherwise.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from media import video
from media.images import IMAGE_EXTENSIONS, list_images, load_rgb, natural_key

VIDEO_EXTENSIONS = video.VIDEO_EXTENSIONS + video.GIF_EXTENSIONS
GENERIC_FOLDERS = ("imgs", "frames", "images")  # such a folder is named after its parent
SKIPPED_FOLDERS = ("imgs2", "csvs", "csvs2")  # ULME-GAN layout: template and OpenFace output, not a clip
GENERIC_VIDEOS = ("target", "video", "result", "output")  # target.mp4 inside a pair folder -> the pair's name
# Videos that sit beside a result but are not one (ULME-GAN keeps the real clip as source.mp4 next to its frames).
NOT_RESULT_VIDEOS = ("source", "src", "input", "real", "original", "reference", "compare", "comparison")
SEPARATORS = "_-. /"
BATCH_FILES = re.compile(r"^contact_sheet(_\d+)?\.png$", re.IGNORECASE)  # for_megc2021.py's sheets: not frames


@dataclass
class Sequence:
    """One clip: a folder of frames or a video file."""

    name: str
    path: Path
    frames: list[Path] | None = None  # None: a video file

    def load(self) -> np.ndarray:
        """(T, H, W, 3) uint8; frames of another size than the first are resized to it."""
        images = [load_rgb(p) for p in self.frames] if self.frames is not None else video.load_frames(self.path)
        if not images:
            raise ValueError(f"{self.path}: no frames")
        h, w = images[0].shape[:2]
        images = [im if im.shape[:2] == (h, w) else np.asarray(Image.fromarray(im).resize((w, h))) for im in images]
        return np.stack(images)

    def video_fps(self) -> float | None:
        """The video's own rate; None for frame folders and GIFs (the caller's default applies)."""
        return video.video_fps(self.path) if self.frames is None else None


@dataclass
class ResultEntry:
    """One generated sequence to score, with what is known about it."""

    name: str  # unique display name (relative path for other systems, folder name for runs)
    generated: Sequence
    run: dict | None = None  # run.json
    run_dir: Path | None = None
    error: str | None = None  # why this result cannot be scored (a damaged run.json): it fails alone
    source: Sequence | None = None
    template: Path | None = None
    notes: list[str] = field(default_factory=list)
    control: Sequence | None = None  # another clip's source: the wrong-clip control (metrics/control.py)

    @property
    def keys(self) -> list[str]:
        """Names tried, in order, when matching sources/templates/annotations."""
        keys = [self.generated.name, self.name]
        if self.run and self.run.get("clip"):
            keys.append(str(self.run["clip"]))
        return list(dict.fromkeys(keys))


# ---------------------------------------------------------------------------------------- discovery

def _sequence_name(folder: Path) -> str:
    return folder.parent.name if folder.name.lower() in GENERIC_FOLDERS else folder.name


def _video_name(path: Path) -> str:
    return path.parent.name if path.stem.lower() in GENERIC_VIDEOS else path.stem


def is_run_folder(folder: Path) -> bool:
    return (folder / "run.json").is_file() and (folder / "frames").is_dir()


def walk_sequences(root: Path, skip_runs: bool = True) -> tuple[list[Path], list[Sequence]]:
    """(run folders, other sequences) under ``root``; run folders are not searched further. A folder's frames
    come first: its videos count only where it has no frames. ``skip_runs`` (results) also leaves out videos
    named like a source."""
    runs, sequences = [], []
    for here, dirs, files in os.walk(root):
        here_path = Path(here)
        dirs[:] = sorted((d for d in dirs if not d.startswith(".") and d.lower() not in SKIPPED_FOLDERS),
                         key=natural_key)
        if skip_runs and is_run_folder(here_path):
            runs.append(here_path)
            dirs[:] = []
            continue
        images = [f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS
                  and not (skip_runs and BATCH_FILES.match(f))]
        if len(images) >= 2:
            frames = [p for p in list_images(here_path).values() if p.name in images]
            sequences.append(Sequence(_sequence_name(here_path), here_path, frames))
            continue
        for f in _one_video_per_name(files):
            if not (skip_runs and Path(f).stem.lower() in NOT_RESULT_VIDEOS):
                sequences.append(Sequence(_video_name(here_path / f), here_path / f))
    return runs, sequences


def _one_video_per_name(files: list[str]) -> list[str]:
    """The folder's videos, one per file stem (``target.mp4`` over ``target.gif``: one clip in two containers)."""
    def rank(f: str) -> int:
        return VIDEO_EXTENSIONS.index(Path(f).suffix.lower())

    chosen: dict[str, str] = {}
    for f in sorted((f for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS), key=natural_key):
        stem = Path(f).stem.lower()
        if stem not in chosen or rank(f) < rank(chosen[stem]):
            chosen[stem] = f
    return sorted(chosen.values(), key=natural_key)


def single_sequence(path: Path) -> Sequence | None:
    """``path`` itself as one sequence (a video file, or a folder holding the frames directly), else None."""
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        return Sequence(_video_name(path), path)
    if path.is_dir() and len(list_images(path)) >= 2 and not any(p.is_dir() for p in path.iterdir()):
        return Sequence(_sequence_name(path), path, list(list_images(path).values()))
    return None


def find_results(root: Path) -> tuple[list[ResultEntry], list[str]]:
    """The result sequences under ``root`` and notes on what was skipped."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"--results {root} does not exist")
    single = single_sequence(root) if not is_run_folder(root) else None
    if single is not None:
        return [ResultEntry(single.name, single)], []
    runs, others = walk_sequences(root)
    entries = [run_entry(folder, root) for folder in runs]
    names = {e.name for e in entries}
    for seq in others:
        label = _unique_label(seq, root, names)
        names.add(label)
        entries.append(ResultEntry(label, seq))
    return entries, failed_index_rows(root)


def _unique_label(seq: Sequence, root: Path, taken: set[str]) -> str:
    if seq.name not in taken:
        return seq.name
    rel = seq.path.relative_to(root) if seq.path != root else Path(seq.path.name)
    return str(rel.with_suffix("") if seq.frames is None else rel)


def run_entry(folder: Path, root: Path) -> ResultEntry:
    frames = list(list_images(folder / "frames").values())
    name = folder.name
    try:
        run = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError) as err:  # this result fails, the others are scored
        return ResultEntry(name, Sequence(name, folder / "frames", frames), None, folder,
                           error=f"{folder / 'run.json'}: cannot be read ({err}); regenerate this result or restore "
                                 f"the file")
    return ResultEntry(name, Sequence(name, folder / "frames", frames), run, folder)


def failed_index_rows(root: Path) -> list[str]:
    """Pairs that ``for_megc2021.py`` recorded as failed: they have no result to score."""
    skipped = []
    for index in sorted(root.glob("index*.csv")):  # index_2.csv ...: later batches in the same folder
        with open(index, newline="") as fh:
            skipped += [f"{row.get('pair')}: not generated ({row.get('error') or row.get('status')})"
                        for row in csv.DictReader(fh) if row.get("status") not in ("ok", None)]
    return skipped


# ---------------------------------------------------------------------------------------- matching

def name_matches(key: str, name: str) -> bool:
    """``key`` equals ``name`` or occurs in it between separators (case-insensitive)."""
    key, name = key.lower(), name.lower()
    if not key:
        return False
    sep = re.escape(SEPARATORS)
    return key == name or re.search(rf"(?:^|[{sep}]){re.escape(key)}(?:$|[{sep}])", name) is not None


def match(names: list[str], candidates: dict[str, list]) -> tuple[object | None, str | None]:
    """(chosen candidate, problem). ``candidates``: key -> objects known by that key. The first of ``names`` with a
    match decides; among its matches the longest key wins; ties between different objects are ambiguous."""
    for name in names:
        hits = [(len(k), k) for k in candidates if name_matches(k, name)]
        if not hits:
            continue
        longest = max(length for length, _ in hits)
        objects = {id(o): o for length, k in hits if length == longest for o in candidates[k]}
        if len(objects) == 1:
            return next(iter(objects.values())), None
        keys = sorted({k for length, k in hits if length == longest})
        return None, f"'{name}' matches several candidates equally well ({', '.join(keys)}): none used"
    return None, None


def source_candidates(root: Path) -> dict[str, list[Sequence]]:
    single = single_sequence(root)
    if single is not None:
        return {"": [single]}
    _, sequences = walk_sequences(root, skip_runs=False)
    table: dict[str, list[Sequence]] = {}
    for seq in sequences:
        table.setdefault(seq.name.lower(), []).append(seq)
    return table


def template_candidates(root: Path) -> dict[str, list[Path]]:
    if root.is_file():
        return {"": [root]}
    table: dict[str, list[Path]] = {}
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d.lower() not in ("imgs", "frames", "csvs", "csvs2")]
        for f in files:
            path = Path(here) / f
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            for key in template_keys(path):
                bucket = table.setdefault(key.lower(), [])
                if path not in bucket:
                    bucket.append(path)
    return table


def template_keys(path: Path) -> list[str]:
    """The file stem, its tails after each '_' (``normalized_asianFemale`` -> ``asianFemale``), and the pair
    folder's name for ``<pair>/imgs2/<image>``."""
    parts = path.stem.split("_")
    keys = ["_".join(parts[i:]) for i in range(len(parts))]
    if path.parent.name.lower() == "imgs2":
        keys.append(path.parent.parent.name)
    return keys


def _resolve_recorded(value: str | None, run_dir: Path) -> Path | None:
    """A path recorded in run.json: absolute, or relative to the working directory or to a folder above the run."""
    if not value:
        return None
    path = Path(value)
    tries = [path] if path.is_absolute() else [Path.cwd() / path, *(p / path for p in [run_dir, *run_dir.parents])]
    found = next((p for p in tries if p.exists()), None)
    return found.resolve() if found is not None else None


def attach_inputs(entries: list[ResultEntry], sources: Path | None, templates: Path | None) -> list[str]:
    """Fill each entry's ``source`` and ``template`` (run.json first, then the name rule); notes say why not.
    Returns batch-level notes from checking the count of pairs against the sources."""
    src_table = source_candidates(Path(sources)) if sources else {}
    tpl_table = template_candidates(Path(templates)) if templates else {}
    for entry in entries:
        _attach_source(entry, src_table, bool(sources))
        _attach_template(entry, tpl_table, bool(templates))
    return pair_count_notes(entries, src_table) if "" not in src_table else []


def pair_count_notes(entries: list[ResultEntry], src_table: dict) -> list[str]:
    """Source clips no result was paired with, and results scored on the same source and template as another
    (one clip scored twice would weigh double in the summary)."""
    notes, seen = [], {}
    all_sources = {str(s.path) for bucket in src_table.values() for s in bucket}
    used = {str(e.source.path) for e in entries if e.source is not None}
    unused = sorted(all_sources - used)
    if unused:
        notes.append(f"{len(unused)} of {len(all_sources)} source clips have no result: "
                     + ", ".join(Path(p).as_posix() for p in unused[:10]) + (" ..." if len(unused) > 10 else ""))
    for entry in entries:
        if entry.source is None:
            continue
        key = (str(entry.source.path), str(entry.template))
        if key in seen:
            notes.append(f"{entry.name} and {seen[key]} are scored on the same source and template")
        seen.setdefault(key, entry.name)
    return notes


def _lookup(entry: ResultEntry, table: dict) -> tuple[object | None, str | None]:
    if "" in table:  # one sequence / one image given: it pairs with everything
        return table[""][0], None
    return match(entry.keys, table)


def _attach_source(entry: ResultEntry, table: dict, given: bool) -> None:
    if entry.run is not None:
        recorded = _resolve_recorded(entry.run.get("source_frames"), entry.run_dir)
        if recorded is not None and recorded.is_dir() and list_images(recorded):
            entry.source = Sequence(_sequence_name(recorded), recorded, list(list_images(recorded).values()))
            return
        if entry.run.get("source_frames") is None and not given:
            entry.notes.append("no source clip: the run was driven by an AU matrix (source metrics absent)")
            return
    found, problem = _lookup(entry, table)
    entry.source = found
    if found is None:
        entry.notes.append(problem or ("no source clip matched (source metrics absent)" if given else
                                       "no source clip given (--sources): source metrics absent"))


def _attach_template(entry: ResultEntry, table: dict, given: bool) -> None:
    if entry.run is not None:
        recorded = _resolve_recorded(entry.run.get("template"), entry.run_dir)
        if recorded is not None and recorded.is_file():
            entry.template = recorded
            return
    found, problem = _lookup(entry, table)
    entry.template = found
    if found is None:
        entry.notes.append(problem or ("no template matched (identity and static-area metrics absent)" if given else
                                       "no template given (--templates): identity and static-area metrics absent"))


# ---------------------------------------------------------------------------------------- run.json extras

def read_driven(run_dir: Path | None) -> tuple[tuple[str, ...], np.ndarray] | None:
    """``aus_driven.csv`` of a run: (AU names, (T, n) raw intensities), or None."""
    if run_dir is None or not (run_dir / "aus_driven.csv").is_file():
        return None
    with open(run_dir / "aus_driven.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    names = tuple(c for c in rows[0] if c.lower() not in ("frame", "name"))
    first = len(rows[0]) - len(names)
    return names, np.array([[float(v) for v in r[first:]] for r in rows[1:] if r], dtype=np.float64)
