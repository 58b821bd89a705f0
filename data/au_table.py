"""AU tables: image name (no extension) -> raw AU intensity vector.

Formats read:
- ``aus_openface.pkl`` (ULME-GAN, GANimation) and ``aus.pkl`` (N2ME): a pickled dict of numpy arrays. Pickles can
  run code when loaded, so they go through a restricted unpickler that only rebuilds dicts, strings, numbers and
  numpy arrays; anything else is refused.
- ``aus.csv``: header ``name,AU01,AU02,...`` (the schema's names), one row per image. The safe, editable form.
- ``aus.json``: ``{"name": [v1, v2, ...], ...}``.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import pickle
from pathlib import Path

import numpy as np

from catalog.au_schema import AUSchema

log = logging.getLogger(__name__)

# Candidate file names inside a data root, in the order they are tried.
AU_TABLE_NAMES = ("aus_openface.pkl", "aus.pkl", "aus.csv", "aus.json")

# The only globals a legitimate AU pickle refers to: numpy's array/dtype/scalar reconstructors.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class UnsafePickleError(ValueError):
    pass


class _AUUnpickler(pickle.Unpickler):
    def __init__(self, fh, path: Path):
        super().__init__(fh)
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._path}: refused to load: the pickle asks for '{module}.{name}', but an AU table may only hold a "
            f"dict of names to numpy arrays, and anything else could run code. Rebuild the table from OpenFace "
            f"CSVs instead: python -m data.prepare_aus --openface_csvs DIR --out aus.csv"
        )


def read_text(path: Path) -> str:
    """A CSV or JSON file as text: UTF-8, with or without the byte-order mark Excel writes ("CSV UTF-8"). Another
    encoding is an error naming the file and the fix (before: a bare codec message, or a '\\ufeffframe' column)."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 (in Excel: "
                         f"'CSV UTF-8')") from None


def _read_pickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        try:
            table = _AUUnpickler(fh, path).load()
        except UnsafePickleError:
            raise
        except Exception as exc:  # truncated or not a pickle at all
            raise ValueError(f"{path}: cannot read AU pickle ({exc})") from exc
    if not isinstance(table, dict):
        raise ValueError(f"{path}: AU pickle holds a {type(table).__name__}, expected a dict name -> AU vector")
    return table


def _read_csv(path: Path, schema: AUSchema) -> dict:
    with io.StringIO(read_text(path), newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty AU CSV")
        missing = [name for name in schema.names if name not in header]
        if missing:
            raise ValueError(f"{path}: AU CSV header lacks {missing}; expected 'name,{','.join(schema.names)}'")
        cols = [header.index(name) for name in schema.names]
        table = {}
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                table[row[0]] = np.array([float(row[c]) for c in cols])
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}, line {line_no}: bad AU row ({exc})") from exc
    return table


def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: AU JSON must be an object name -> list of intensities")
    return {k: np.asarray(v, dtype=np.float64) for k, v in raw.items()}


def load_au_table(path: str | Path, schema: AUSchema, clip: bool = False) -> dict[str, np.ndarray]:
    """Read and validate an AU table; keys are image names without extension, values raw float64 vectors.

    Values outside the schema's range are an error naming the row and AU; ``clip`` (``--clip_aus``) clips them
    and logs how many were clipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AU table not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        table = _read_pickle(path)
    elif suffix == ".csv":
        table = _read_csv(path, schema)
    elif suffix == ".json":
        table = _read_json(path)
    else:
        raise ValueError(f"{path}: unknown AU table format '{suffix}' (use .pkl, .csv or .json)")
    out, clipped = {}, 0
    for key, vec in table.items():
        name = str(Path(str(key)).stem if "." in str(key) else key)
        out[name] = schema.check_vector(vec, f"{path}, row '{key}'", clip=clip)
        clipped += int(schema.out_of_range(np.asarray(vec, dtype=np.float64)).sum())
    if clipped:
        log.warning("%s: clipped %d AU value(s) outside 0..%g (--clip_aus)", path, clipped, schema.max_intensity)
    return out


def find_au_table(data_root: str | Path) -> Path:
    root = Path(data_root)
    for name in AU_TABLE_NAMES:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"no AU table in {root}: expected one of {', '.join(AU_TABLE_NAMES)} (or pass --aus_file). "
        f"OpenFace CSVs become one with: python -m data.prepare_aus --openface_csvs DIR --out aus.csv")


def save_au_table_csv(table: dict[str, np.ndarray], path: str | Path, schema: AUSchema) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", *schema.names])
    for name, vec in table.items():
        writer.writerow([name, *(f"{float(v):.4f}" for v in vec)])
    Path(path).write_text(buf.getvalue())
