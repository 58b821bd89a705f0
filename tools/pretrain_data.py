"""The pre-training set of the bundled generator: UTKFace + the London faces, one training data root.

    # 1. align + measure both sources with the built-in front end (resumable; skipped when already done)
    python -m openface.prepare ../shared/data/utkface datasets/utkface_128 --size 128 --workers 2
    python -m openface.prepare ../shared/data/london datasets/london_128 --size 128 --workers 2
    # 2. merge them into one data root with identity-disjoint train/test lists
    python -m tools.pretrain_data --utkface datasets/utkface_128 --london datasets/london_128 \
        --out datasets/pretrain_128
    # or steps 1 and 2 in one command:
    python -m tools.pretrain_data --utkface datasets/utkface_128 --london datasets/london_128 \
        --out datasets/pretrain_128 --utkface_src ../shared/data/utkface --london_src ../shared/data/london

OUT receives ``imgs/`` (hard links to the prepared crops, copies where links are impossible), ``aus.csv``,
``train_ids.txt``, ``test_ids.txt`` and ``manifest.json`` (sources, counts, the held-out London people, licences).
Names are prefixed with their source: ``utk__<file>`` and ``london__<neutral|smiling>__<NNN>_<NN>``; characters
other than letters, digits, ``_`` and ``-`` become ``_`` (a dot would be read as an extension by the id lists).

Held-out identities:
- London: whole people (the NNN of ``NNN_03.jpg`` / ``NNN_08.jpg``), chosen by a stable hash of the id
  (``--london_test_fraction``, 10 % by default: 8 of 80 people, both of their photos). ``openface.prepare`` alone
  splits this set by its first folder (neutral / smiling), which would put every person on both sides.
- UTKFace has no identity labels: images are held out by a stable hash of the file name (``--utkface_test_fraction``,
  5 % by default). The same person can appear under two file names, so this hold-out is by image, not guaranteed
  by identity.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from media.images import deterministic_split

UTK_PREFIX, LONDON_PREFIX = "utk", "london"
_LONDON_NAME = re.compile(r"^(?:neutral|smiling)__(\d+)_\d+$")
LICENCES = {
    UTK_PREFIX: "UTKFace: non-commercial research purposes only (https://susanqq.github.io/UTKFace/)",
    LONDON_PREFIX: "Face Research Lab London Set, CC BY 4.0, DeBruine & Jones 2017, doi 10.6084/m9.figshare.5047666",
}


def read_aus(prepared: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The AU header and name -> values (as written, strings) of a prepared folder's aus.csv."""
    path = prepared / "aus.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run python -m openface.prepare on the source first")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    return header[1:], {r[0]: r[1:] for r in body}


def london_person(name: str) -> str:
    m = _LONDON_NAME.match(name)
    if not m:
        raise ValueError(f"London name '{name}' is not <neutral|smiling>__NNN_NN: is this the London set?")
    return m.group(1)


def split_utkface(names: list[str], fraction: float) -> set[str]:
    return set(deterministic_split(sorted(names), fraction)[1])


def split_london(names: list[str], fraction: float) -> tuple[set[str], list[str]]:
    people = sorted({london_person(n) for n in names})
    held_people = deterministic_split(people, fraction)[1]
    held = set(held_people)
    return {n for n in names if london_person(n) in held}, sorted(held_people)


def safe_name(name: str) -> str:
    """Id lists strip anything after a dot as an extension (UTKFace has ``...jpg.chip.jpg``): keep names to
    letters, digits, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _link(src: Path, dst: Path) -> str:
    try:
        os.link(src, dst)
        return "link"
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)
        return "copy"


def merge(utkface: Path, london: Path, out: Path, *, utk_fraction: float = 0.05,
          london_fraction: float = 0.10) -> dict:
    """Build OUT from the two prepared folders; returns the manifest."""
    utk_header, utk_aus = read_aus(utkface)
    lon_header, lon_aus = read_aus(london)
    if utk_header != lon_header:
        raise ValueError(f"AU columns differ: {utkface}/aus.csv has {utk_header}, {london}/aus.csv {lon_header}; "
                         f"prepare both with the same --aus_schema")
    utk_test = split_utkface(list(utk_aus), utk_fraction)
    lon_test, held_people = split_london(list(lon_aus), london_fraction)

    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "imgs").mkdir(parents=True)
    rows, train, test, how, seen = [], [], [], {"link": 0, "copy": 0}, {}
    try:
        for prefix, folder, table, held in ((UTK_PREFIX, utkface, utk_aus, utk_test),
                                            (LONDON_PREFIX, london, lon_aus, lon_test)):
            for name in sorted(table):
                src = folder / "imgs" / f"{name}.png"
                if not src.is_file():
                    raise FileNotFoundError(f"{src} listed in {folder}/aus.csv but missing")
                merged = f"{prefix}__{safe_name(name)}"
                if merged in seen:
                    raise ValueError(f"two inputs map to the merged name {merged}: {seen[merged]} and {src}")
                seen[merged] = src
                how[_link(src, tmp / "imgs" / f"{merged}.png")] += 1
                rows.append([merged, *table[name]])
                (test if name in held else train).append(merged)
        with open(tmp / "aus.csv", "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["name", *utk_header])
            writer.writerows(rows)
        (tmp / "train_ids.txt").write_text("".join(f"{n}\n" for n in train))
        (tmp / "test_ids.txt").write_text("".join(f"{n}\n" for n in test))
        manifest = {
            "sources": {UTK_PREFIX: str(utkface), LONDON_PREFIX: str(london)},
            "aus": utk_header,
            "images": {UTK_PREFIX: len(utk_aus), LONDON_PREFIX: len(lon_aus), "total": len(rows)},
            "train": len(train), "test": len(test),
            "test_by_source": {UTK_PREFIX: len(utk_test), LONDON_PREFIX: len(lon_test)},
            "held_out_london_people": held_people,
            "split": {UTK_PREFIX: f"stable SHA-1 hash of the file name, fraction {utk_fraction} (no identity labels)",
                      LONDON_PREFIX: f"stable SHA-1 hash of the person id NNN, fraction {london_fraction} "
                                     f"(whole people: both photos)"},
            "files": how,
            "licences": LICENCES,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            if not (out / "manifest.json").is_file():
                raise FileExistsError(f"{out} exists and is not a merged pre-training root (no manifest.json): "
                                      f"choose another --out")
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.pretrain_data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utkface", required=True, type=Path, help="UTKFace prepared by openface.prepare")
    p.add_argument("--london", required=True, type=Path, help="London set prepared by openface.prepare")
    p.add_argument("--out", required=True, type=Path, help="merged training data root (rebuilt if it exists)")
    p.add_argument("--utkface_src", type=Path, default=None, help="raw UTKFace: run openface.prepare on it first")
    p.add_argument("--london_src", type=Path, default=None, help="raw London set: run openface.prepare on it first")
    p.add_argument("--size", type=int, default=128, choices=(128, 256), help="crop size for the prepare step")
    p.add_argument("--workers", type=int, default=2, help="processes for the prepare step")
    p.add_argument("--utkface_test_fraction", type=float, default=0.05)
    p.add_argument("--london_test_fraction", type=float, default=0.10)
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        for src, dst in ((args.utkface_src, args.utkface), (args.london_src, args.london)):
            if src is not None:
                from openface.prepare import prepare

                summary = prepare(src, dst, size=args.size, workers=args.workers, progress=sys.stderr.isatty())
                print(f"prepared {src} -> {dst}: {summary['faces']} faces, {summary['rejected']} rejected")
        manifest = merge(args.utkface, args.london, args.out, utk_fraction=args.utkface_test_fraction,
                         london_fraction=args.london_test_fraction)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{manifest['images']['total']} faces ({manifest['images'][UTK_PREFIX]} UTKFace, "
          f"{manifest['images'][LONDON_PREFIX]} London) -> {args.out}: {manifest['train']} train, "
          f"{manifest['test']} test (London people held out: {', '.join(manifest['held_out_london_people'])}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
