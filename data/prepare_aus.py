"""Build an AU table from OpenFace output, or turn a (trusted) pickle table into the safe CSV form.

    python -m data.prepare_aus --openface_csvs DIR --out DATA_ROOT/aus.csv
    python -m data.prepare_aus --pickle DATA_ROOT/aus_openface.pkl --out DATA_ROOT/aus.csv

OpenFace's FaceLandmarkImg writes one CSV per image (named like the image). When it found several faces, the most
confident one is kept; a CSV without any face row is reported and left out, never filled with zeros.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_17
from data.au_table import load_au_table, save_au_table_csv
from media.images import natural_key
from openface.csv_io import read_openface_csv


def table_from_openface_csvs(folder: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Image name -> 17 raw intensities of the most confident face; plus the CSVs that held no face."""
    table, empty = {}, []
    for path in sorted(Path(folder).glob("*.csv"), key=lambda p: natural_key(p.name)):
        try:
            rows = read_openface_csv(path)
        except ValueError as err:
            if "no data rows" in str(err):
                empty.append(path.name)
                continue
            raise
        best = int(np.nanargmax(rows.confidence))
        table[path.stem] = rows.intensity[best]
    return table, empty


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--openface_csvs", help="folder of per-image OpenFace CSVs")
    src.add_argument("--pickle", help="aus_openface.pkl / aus.pkl to convert (read with the restricted unpickler)")
    p.add_argument("--out", required=True, help="AU table to write (.csv)")
    args = p.parse_args(argv)
    if args.openface_csvs:
        table, empty = table_from_openface_csvs(args.openface_csvs)
        if empty:
            print(f"{len(empty)} CSV(s) hold no face and were left out: {', '.join(empty[:20])}", file=sys.stderr)
    else:
        try:
            table = load_au_table(args.pickle, OPENFACE_17)
        except (FileNotFoundError, ValueError) as err:  # missing, damaged or unsafe pickle: one line, exit 2
            print(f"error: {err}", file=sys.stderr)
            return 2
    if not table:
        print("error: no AU vectors found", file=sys.stderr)
        return 2
    save_au_table_csv(table, args.out, OPENFACE_17)
    print(f"wrote {len(table)} AU vectors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
