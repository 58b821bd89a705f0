"""AU-control grid: does each AU move what it should? Rows = faces, columns = one AU at increasing intensity.

    python -m tools.au_grid --ckpt FILE --faces FACES --out grid.png \
        [--aus AU12,AU06,AU04,AU01,AU02,AU26] [--levels 0,1,2,3,4,5] [--base measured|zeros] [--rows 4] \
        [--names a,b] [--cell 96] [--measure]

FACES is
- a training data root (``imgs/`` + ``aus.csv`` + ``test_ids.txt``, e.g. one made by ``openface.prepare`` or
  ``tools.pretrain_data``): its held-out faces (``test_ids.txt``), with the AUs of its table;
- a folder of face photos, or a text file listing image paths one per line: each photo is aligned and measured
  by the built-in front end.
``--names`` picks faces by name; otherwise ``--rows`` faces spread evenly over the list.

Targets: ``--base measured`` (default) starts from the face's own measured AUs and sets the one AU of the column
to each level (so the other AUs keep the face's own values, and level 0 removes that AU); ``--base zeros`` starts
from all-zero AUs (a neutral face) and sets only that AU. The first column is the input face.

Besides the grid, ``<out>.json`` records per AU the mean pixel change (0..255, against the face generated with its
base AUs) in fixed regions of the canonical crop (brows, eyes, cheeks, mouth, chin) at the highest level, and with
``--measure`` the AUs the built-in estimator re-measures on every generated face (per AU and level: mean measured
value of that AU, and the Pearson r between target level and measured value).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_AUS = ("AU12", "AU06", "AU04", "AU01", "AU02", "AU26")
DEFAULT_LEVELS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
# Regions of the canonical aligned crop (unit square: x0, y0, x1, y1), from openface.align.CANONICAL (eyes at
# y = 0.31, nose tip at y = 0.56).
REGIONS = {
    "brows": (0.15, 0.10, 0.85, 0.27),
    "eyes": (0.15, 0.27, 0.85, 0.38),
    "cheeks": (0.12, 0.42, 0.88, 0.62),  # includes the nose wings; the mouth region is below
    "mouth": (0.28, 0.62, 0.72, 0.82),
    "chin": (0.30, 0.82, 0.70, 0.98),
}
# Where each AU should act (FACS): used only to print the expected region next to the measured one.
EXPECTED = {"AU01": "brows", "AU02": "brows", "AU04": "brows", "AU05": "eyes", "AU06": "cheeks", "AU07": "eyes",
            "AU09": "cheeks", "AU10": "mouth", "AU12": "mouth", "AU14": "mouth", "AU15": "mouth", "AU17": "chin",
            "AU20": "mouth", "AU23": "mouth", "AU25": "mouth", "AU26": "chin", "AU45": "eyes"}


@dataclass
class GridFace:
    name: str
    pixels: np.ndarray  # aligned crop, uint8 (H, W, 3)
    aus: np.ndarray  # raw 0..5, in the model's schema


def _spread(items: list, n: int) -> list:
    if n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def faces_from_root(root: Path, schema, names: list[str] | None, rows: int) -> list[GridFace]:
    from data.au_table import AU_TABLE_NAMES, load_au_table
    from data.id_lists import find_id_list, read_id_list
    from media.images import list_images, load_rgb

    table_path = next((root / n for n in AU_TABLE_NAMES if (root / n).is_file()), None)
    if table_path is None:
        raise FileNotFoundError(f"{root}: no AU table ({', '.join(AU_TABLE_NAMES)})")
    table = load_au_table(table_path, schema)
    images = list_images(root / "imgs")
    id_list = find_id_list(root, "test")
    pool = read_id_list(id_list) if id_list else sorted(images)
    chosen = names or _spread(pool, rows)
    missing = [n for n in chosen if n not in images or n not in table]
    if missing:
        raise FileNotFoundError(f"{root}: no image or AUs for {', '.join(missing[:10])}")
    return [GridFace(n, load_rgb(images[n]), table[n]) for n in chosen]


def faces_from_photos(paths: list[Path], schema) -> list[GridFace]:
    from data.sequences import template_from_image
    from solvers.pair_input import measurement_backend

    out = []
    with measurement_backend("builtin", None, None) as backend:
        for p in paths:
            t = template_from_image(p, schema, backend.front_end)
            out.append(GridFace(p.stem, t.aligned, t.aus))
    return out


def load_faces(spec: str, schema, names: list[str] | None = None, rows: int = 4) -> list[GridFace]:
    from media.images import IMAGE_EXTENSIONS, list_images

    path = Path(spec)
    if path.is_dir() and (path / "imgs").is_dir():
        return faces_from_root(path, schema, names, rows)
    if path.is_dir():
        photos = list_images(path)
        chosen = [photos[n] for n in names] if names else _spread(list(photos.values()), rows)
        return faces_from_photos(chosen, schema)
    if path.is_file() and path.suffix.lower() not in IMAGE_EXTENSIONS:
        listed = [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
        return faces_from_photos([p for p in listed if not names or p.stem in names] if names else
                                 _spread(listed, rows), schema)
    return faces_from_photos([Path(p) for p in spec.split(",")], schema)


def targets_for(face: GridFace, schema, aus: list[str], levels: list[float], base: str) -> np.ndarray:
    """(len(aus) * len(levels) + 1, n): the base vector first, then one row per (AU, level)."""
    start = face.aus.copy() if base == "measured" else np.zeros(schema.n)
    rows = [start]
    for au in aus:
        for level in levels:
            v = start.copy()
            v[schema.index(au)] = level
            rows.append(v)
    return np.clip(np.stack(rows), 0, 5)


def region_change(base: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """Mean |frame - base| (0..255) per canonical region, averaged over the frames given."""
    size = base.shape[0]
    diff = np.abs(frames.astype(np.float64) - base.astype(np.float64)[None]).mean(axis=-1)
    out = {}
    for name, (x0, y0, x1, y1) in REGIONS.items():
        out[name] = float(diff[:, int(y0 * size):int(y1 * size), int(x0 * size):int(x1 * size)].mean())
    return out


def _text(draw: ImageDraw.ImageDraw, xy, text: str) -> None:
    draw.text(xy, text, fill=(0, 0, 0))


def draw_grid(faces: list[GridFace], generated: list[np.ndarray], aus: list[str], levels: list[float], cell: int,
              base: str) -> Image.Image:
    """generated[i]: (1 + len(aus) * len(levels), H, W, 3) for face i (the base image first, not drawn)."""
    from media.frames import resize_frames

    gap, head, left = 6, 34, 0
    cols = 1 + len(aus) * len(levels)
    width = left + cell + gap + len(aus) * (len(levels) * cell + gap)
    sheet = Image.new("RGB", (width, head + len(faces) * cell + 14), "white")
    draw = ImageDraw.Draw(sheet)
    _text(draw, (left + 2, 2), "input")
    for a, au in enumerate(aus):
        x0 = left + cell + gap + a * (len(levels) * cell + gap)
        _text(draw, (x0 + 2, 2), f"{au} ({'on measured AUs' if base == 'measured' else 'alone, others 0'})")
        for k, level in enumerate(levels):
            _text(draw, (x0 + k * cell + 2, 18), f"{level:g}")
    for r, (face, frames) in enumerate(zip(faces, generated)):
        y = head + r * cell
        sheet.paste(Image.fromarray(resize_frames(face.pixels[None], cell)[0]), (left, y))
        small = resize_frames(frames[1:], cell)
        for a in range(len(aus)):
            x0 = left + cell + gap + a * (len(levels) * cell + gap)
            for k in range(len(levels)):
                sheet.paste(Image.fromarray(small[a * len(levels) + k]), (x0 + k * cell, y))
    assert cols == 1 + len(aus) * len(levels)
    _text(draw, (2, head + len(faces) * cell + 1), f"rows: {', '.join(f.name for f in faces)}"[:width // 6])
    return sheet


def measure_generated(frames: np.ndarray, schema) -> np.ndarray:
    """AUs of generated faces re-measured by the built-in front end; NaN rows where no face is found.

    Faces smaller than 256 px are enlarged to 256 px (bicubic) first: the landmarker is unreliable on tiny crops."""
    from media.frames import resize_frames
    from openface.frontend import NoFaceError, au_vector
    from solvers.pair_input import measurement_backend

    if frames.shape[1] < 256:
        frames = resize_frames(frames, 256)
    out = np.full((len(frames), schema.n), np.nan)
    with measurement_backend("builtin", None, None) as backend:
        for i, frame in enumerate(frames):
            try:
                out[i] = au_vector(backend.front_end.measure(frame, f"frame {i}"), schema.names)[0]
            except NoFaceError:
                pass
    return out


def au_grid(ckpt: Path, faces_spec: str, out: Path, *, aus=DEFAULT_AUS, levels=DEFAULT_LEVELS, base="measured",
            rows: int = 4, names: list[str] | None = None, cell: int = 96, measure: bool = False,
            gpu_ids: str = "-1") -> dict:
    from data.sequences import Template
    from solvers.distributed import select_device
    from solvers.tester import SequenceGenerator

    model = SequenceGenerator(Path(ckpt), select_device(gpu_ids, 0), batch_size=64)
    unknown = [a for a in aus if a not in model.schema.names]
    if unknown:
        raise ValueError(f"--aus {', '.join(unknown)}: not in the model's AU schema ({', '.join(model.schema.names)})")
    faces = load_faces(faces_spec, model.schema, names, rows)
    generated, targets = [], []
    for face in faces:
        tgt = targets_for(face, model.schema, list(aus), list(levels), base)
        template = model.load_template(Template(Path(face.name), face.aus, face.pixels))  # as test mode does
        generated.append(model.generate(template, tgt, template_aus=face.aus))
        targets.append(tgt)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_grid(faces, generated, list(aus), list(levels), cell, base).save(out, optimize=True)

    n_lv = len(levels)
    record = {"checkpoint": str(ckpt), "faces": [f.name for f in faces], "aus": list(aus), "levels": list(levels),
              "base": base, "region_change_at_top_level": {}, "grid": str(out)}
    for a, au in enumerate(aus):
        top = np.stack([g[1 + a * n_lv + n_lv - 1] for g in generated])
        bases = [g[0] for g in generated]
        per_face = [region_change(b, t[None]) for b, t in zip(bases, top)]
        change = {k: round(float(np.mean([p[k] for p in per_face])), 2) for k in REGIONS}
        record["region_change_at_top_level"][au] = {
            "change": change, "largest": max(change, key=change.get), "expected": EXPECTED.get(au)}
    if measure:
        record["remeasured"] = {}
        for a, au in enumerate(aus):
            j = model.schema.index(au)
            cells = np.stack([g[1 + a * n_lv:1 + (a + 1) * n_lv] for g in generated])  # (faces, levels, H, W, 3)
            measured = measure_generated(cells.reshape(-1, *cells.shape[2:]), model.schema)[:, j].reshape(len(faces),
                                                                                                     n_lv)
            level_grid = np.broadcast_to(np.asarray(levels, dtype=float), measured.shape)
            ok = ~np.isnan(measured)
            r = float(np.corrcoef(level_grid[ok], measured[ok])[0, 1]) if ok.sum() > 2 and measured[ok].std() > 0 \
                else None
            record["remeasured"][au] = {
                "mean_by_level": [None if np.isnan(v) else round(float(v), 3)
                                  for v in np.nanmean(np.where(ok, measured, np.nan), axis=0)],
                "input_mean": round(float(np.mean([f.aus[j] for f in faces])), 3),
                "pearson_r_level_vs_measured": None if r is None else round(r, 3),
                "mae_vs_level": round(float(np.nanmean(np.abs(measured - level_grid))), 3),
                "faces_not_found": int((~ok).sum())}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.au_grid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, default=None, help="generator checkpoint (default: the bundled model)")
    p.add_argument("--faces", required=True, help="data root (its test_ids.txt), photo folder, list file, or a,b")
    p.add_argument("--out", type=Path, required=True, help="grid image (PNG); <out>.json gets the numbers")
    p.add_argument("--aus", default=",".join(DEFAULT_AUS))
    p.add_argument("--levels", default=",".join(f"{v:g}" for v in DEFAULT_LEVELS), help="raw intensities 0..5")
    p.add_argument("--base", default="measured", choices=("measured", "zeros"),
                   help="measured: the face's own AUs with one AU set; zeros: that AU alone")
    p.add_argument("--rows", type=int, default=4, help="faces, spread over the list, unless --names")
    p.add_argument("--names", default=None, help="comma-separated face names")
    p.add_argument("--cell", type=int, default=96, help="pixels per grid cell")
    p.add_argument("--measure", action="store_true", help="re-measure every generated face (built-in estimator)")
    p.add_argument("--gpu_ids", default="-1")
    args = p.parse_args(argv)
    from checkpoints import BUNDLED_CHECKPOINT
    from monitor.logs import setup_logging

    setup_logging(None, True)
    try:
        record = au_grid(args.ckpt or BUNDLED_CHECKPOINT, args.faces, args.out,
                         aus=[a.strip() for a in args.aus.split(",") if a.strip()], levels=_floats(args.levels),
                         base=args.base, rows=args.rows, names=args.names.split(",") if args.names else None,
                         cell=args.cell, measure=args.measure, gpu_ids=args.gpu_ids)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(record['faces'])} faces x {len(record['aus'])} AUs x {len(record['levels'])} levels")
    for au, info in record["region_change_at_top_level"].items():
        line = (f"  {au}: largest change in {info['largest']} (expected {info['expected']}); "
                + ", ".join(f"{k} {v:.1f}" for k, v in info["change"].items()))
        if "remeasured" in record:
            m = record["remeasured"][au]
            line += f"; re-measured by level {m['mean_by_level']}, r {m['pearson_r_level_vs_measured']}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
