"""Test-time inputs: a driving clip (frames + per-frame AUs) and a template face, in the ULME-GAN folder layout.

    DIR/imgs/        driving ME clip, one face crop per frame (naturally ordered: img9 < img10)
    DIR/imgs2/       the template face (exactly one image, or pick one with `template=`)
    DIR/csvs/        optional OpenFace CSV per frame (needed for re-encoding: it holds the presence flags)
    DIR/csvs2/       optional OpenFace CSV of the template
    DIR/aus_openface.pkl | aus.pkl | aus.csv | aus.json   optional AU table for frames and template

An "AU matrix" (a table of AU vectors, one row per output frame) can drive the template without any frames.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS, AUSchema
from catalog.datasets import DEFAULT_FPS, native_fps
from data.au_table import AU_TABLE_NAMES, load_au_table, read_text
from media.images import describe_gaps, list_images, load_rgb, numbering_gaps
from openface.csv_io import read_openface_csv

log = logging.getLogger(__name__)



@dataclass
class DrivingClip:
    """Per-frame AUs (T, n) on the raw 0..5 scale; frames and presence flags when the clip has them."""

    name: str
    aus: np.ndarray
    frames: list[Path] | None = None
    presence: np.ndarray | None = None  # (T, 18) OpenFace `_c` columns, AU28 included
    fps: float = DEFAULT_FPS
    source: str = ""  # where the AUs came from, for the run record
    frame_gaps: list[int] = field(default_factory=list)  # frame numbers missing from imgs/ (warned, recorded)


@dataclass
class Template:
    path: Path
    aus: np.ndarray | None  # raw AUs when known (AU table, csvs2 or measured), else None
    aligned: np.ndarray | None = None  # the front end's aligned crop, used instead of the file when present


def _au_table_in(folder: Path) -> Path | None:
    return next((folder / n for n in AU_TABLE_NAMES if (folder / n).is_file()), None)


def _best_face_row(path: Path):
    """The most confident face of a FaceLandmarkImg CSV: (intensity (17,), presence (18,))."""
    rows = read_openface_csv(path)
    if np.all(np.isnan(rows.intensity)):
        raise ValueError(f"{path}: no usable face row")
    best = int(np.nanargmax(rows.confidence))
    return rows.intensity[best], rows.presence[best]


def _read_csv_folder(csv_dir: Path, names: list[str], schema: AUSchema):
    missing = [n for n in names if not (csv_dir / f"{n}.csv").is_file()]
    if missing:
        shown = ", ".join(missing[:20])
        raise FileNotFoundError(f"{csv_dir}: no OpenFace CSV for {len(missing)} frame(s) of imgs/: {shown} "
                                f"(frame and CSV names must match)")
    pairs = [_best_face_row(csv_dir / f"{n}.csv") for n in names]
    intensity = np.stack([p[0] for p in pairs])
    presence = np.stack([p[1] for p in pairs])
    return _fit_schema(intensity, schema), presence


def _fit_schema(intensity17: np.ndarray, schema: AUSchema) -> np.ndarray:
    """OpenFace CSVs hold the 17 OpenFace AUs; a model with other AUs cannot be driven by them alone."""
    if schema.names != OPENFACE_AUS:
        extra = [n for n in schema.names if n not in OPENFACE_AUS]
        raise ValueError(f"the model uses {schema.n} AUs ({schema.key}); OpenFace CSVs give 17 and lack "
                         f"{', '.join(extra)}: provide an AU table with {schema.n} values per frame")
    return intensity17


def measure_with_front_end(paths: list[Path], schema: AUSchema, front_end,
                           fps: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """AUs and presence flags of a clip's frames measured by the built-in front end (``--pre_treatment``), in the
    estimator's sequence mode (movement from the first frame)."""
    from openface.frontend import measure_images

    return measure_images(((p, load_rgb(p)) for p in paths), schema.names, front_end, fps)


def read_clip_folder(root: str | Path, schema: AUSchema, *, need_presence: bool = False, front_end=None,
                     csv_root: Path | None = None, use_table: bool = True, clip_aus: bool = False):
    """A driving clip: ``root/imgs`` frames with AUs from the AU table in ``root`` or ``root/csvs``, or measured
    by ``front_end`` (an ``openface.frontend.FaceFrontEnd``) when one is given.

    ``csv_root`` holds ``csvs/`` (default ``root``: OpenFace output written elsewhere can be read in place);
    ``use_table=False`` ignores the folder's AU table. Returns the clip and the AU table used (or None), which may
    also hold the template's AUs."""
    root = Path(root)
    csv_root = Path(csv_root) if csv_root is not None else root
    frames = list_images(root / "imgs") if (root / "imgs").is_dir() else {}
    if not frames:
        raise FileNotFoundError(f"{root}/imgs holds no frames: put the driving clip there, or use --aus_matrix")
    names = list(frames)
    gaps = numbering_gaps(names)
    if gaps:  # a missing middle frame makes the clip jump there; say so rather than generate without a word
        log.warning("%s/imgs: %s; the generated clip skips them too", root, describe_gaps(gaps))
    if front_end is not None:
        aus, presence = measure_with_front_end(list(frames.values()), schema, front_end, native_fps(root.name))
        clip = DrivingClip(root.name, aus, list(frames.values()), presence, native_fps(root.name),
                           "built-in front end", gaps)
        return clip, None
    table_path = _au_table_in(root) if use_table else None
    table = load_au_table(table_path, schema, clip=clip_aus) if table_path else None
    presence = None
    if need_presence or table is None:
        if not (csv_root / "csvs").is_dir():
            why = "--re_code needs OpenFace presence flags" if need_presence else "no AU table either"
            raise FileNotFoundError(f"{root}/csvs missing ({why}); run OpenFace FeatureExtraction/FaceLandmarkImg "
                                    f"on imgs/ or provide an AU table")
        aus, presence = _read_csv_folder(csv_root / "csvs", names, schema)
        source = str(csv_root / "csvs")
    else:
        missing = [n for n in names if n not in table]
        if missing:
            raise KeyError(f"{table_path}: no AUs for {len(missing)} frame(s) of imgs/: {', '.join(missing[:20])}")
        aus, source = np.stack([table[n] for n in names]), str(table_path)
    clip = DrivingClip(root.name, aus, [frames[n] for n in names], presence, native_fps(root.name), source, gaps)
    return clip, table


def read_pair_folder(root: str | Path, schema: AUSchema, *, need_presence: bool = False,
                     template: str | None = None, front_end=None, csv_root: Path | None = None,
                     use_table: bool = True, clip_aus: bool = False) -> tuple[DrivingClip, Template]:
    """The driving clip and template of one ULME-style test folder, checked."""
    clip, table = read_clip_folder(root, schema, need_presence=need_presence, front_end=front_end,
                                   csv_root=csv_root, use_table=use_table, clip_aus=clip_aus)
    return clip, read_template(Path(root), schema, table, template, front_end, csv_root)


def template_from_image(path: Path, schema: AUSchema, front_end=None) -> Template:
    """A template image given directly; its AUs from an OpenFace CSV of the same name beside it, if any, or
    measured (and the face aligned) by the front end."""
    if front_end is not None:
        return measured_template(path, schema, front_end)
    csv_path = path.with_suffix(".csv")
    aus = _fit_schema(_best_face_row(csv_path)[0][None], schema)[0] if csv_path.is_file() else None
    return Template(path, aus)


def measured_template(path: Path, schema: AUSchema, front_end) -> Template:
    """The front end aligns the template like the training faces and measures its AUs."""
    from openface.frontend import au_vector

    measurement = front_end.measure(load_rgb(path), str(path))
    return Template(path, au_vector(measurement, schema.names)[0], measurement.crop.image)


def read_template(root: Path, schema: AUSchema, table: dict | None, choice: str | None,
                  front_end=None, csv_root: Path | None = None) -> Template:
    folder = root / "imgs2"
    images = list_images(folder) if folder.is_dir() else {}
    if choice:
        if choice not in images:
            raise FileNotFoundError(f"template '{choice}' not in {folder} (found: {', '.join(images) or 'none'})")
        name = choice
    elif len(images) == 1:
        name = next(iter(images))
    elif not images:
        raise FileNotFoundError(f"{folder} holds no template face: put one aligned face image there")
    else:
        raise ValueError(f"{folder} holds {len(images)} templates ({', '.join(images)}): choose one with --template")
    if front_end is not None:
        return measured_template(images[name], schema, front_end)
    aus = None
    if table is not None and name in table:
        aus = table[name]
    elif ((csv_root or root) / "csvs2" / f"{name}.csv").is_file():
        aus = _fit_schema(_best_face_row((csv_root or root) / "csvs2" / f"{name}.csv")[0][None], schema)[0]
    return Template(images[name], aus)


def read_au_matrix(path: str | Path, schema: AUSchema, clip_aus: bool = False) -> DrivingClip:
    """An AU matrix: CSV with a header of AU names (AU columns left out are 0; an optional 'frame' column is
    ignored) or a JSON list of vectors. One row per output frame, raw 0..5 intensities. A row with a missing or
    extra cell is an error (it would otherwise turn into a silent 0)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AU matrix not found: {path}")
    rows = _json_matrix(path, schema) if path.suffix.lower() == ".json" else _csv_matrix(path, schema)
    checked = np.stack([schema.check_vector(row, f"{path} row {i + 1}", clip=clip_aus) for i, row in enumerate(rows)])
    clipped = int(schema.out_of_range(rows).sum())
    if clipped:
        log.warning("%s: clipped %d AU value(s) outside 0..%g (--clip_aus)", path, clipped, schema.max_intensity)
    return DrivingClip(path.stem, checked, None, None, DEFAULT_FPS, str(path))


def _json_matrix(path: Path, schema: AUSchema) -> np.ndarray:
    try:
        raw = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: an AU matrix is a JSON list of {schema.n}-value AU vectors (one per frame), got "
                         f"a {type(raw).__name__}; a name -> vector object is an AU table (--aus_file)")
    for i, row in enumerate(raw):
        if not isinstance(row, list) or len(row) != schema.n:
            raise ValueError(f"{path}: row {i + 1} is not a list of {schema.n} numbers ({str(row)[:80]})")
    try:
        rows = np.asarray(raw, dtype=np.float64).reshape(len(raw), schema.n)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: AU values must be numbers ({exc})") from None
    if not len(rows):
        raise ValueError(f"{path}: AU matrix has no rows")
    return rows


def _csv_matrix(path: Path, schema: AUSchema) -> np.ndarray:
    with io.StringIO(read_text(path), newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = [c.strip() for c in next(reader, [])]
        body = [(line, r) for line, r in enumerate(reader, start=2) if any(c.strip() for c in r)]
    if not body:
        raise ValueError(f"{path}: AU matrix has no rows")
    unknown = [c for c in header if c not in schema.names and c.lower() not in ("frame", "name")]
    if unknown:
        raise ValueError(f"{path}: unknown columns {unknown}; use AU names {', '.join(schema.names)}")
    cols = {name: header.index(name) for name in schema.names if name in header}
    rows = np.zeros((len(body), schema.n))
    for i, (line, cells) in enumerate(body):
        if len(cells) != len(header):
            raise ValueError(f"{path}, line {line}: {len(cells)} values for {len(header)} columns; every row needs "
                             f"one value per header column")
        for j, name in enumerate(schema.names):
            if name in cols:
                rows[i, j] = _cell(cells[cols[name]], path, line, name)
    return rows


def _cell(text: str, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}, column {column}: '{text}' is not a number") from None
