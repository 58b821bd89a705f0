"""A synthetic cartoon-face dataset whose AU labels are true by construction.

For checking an install, smoke-testing a training set-up and unit tests, not for research: real faces need real
data. Each face has brows, eyes and a mouth whose geometry follows its AU vector, so a generator trained on it
can learn visible AU control (brow raise AU01/AU02, brow lowerer AU04, lip corner puller AU12, jaw drop AU26).

    python -m data.synthetic OUT_DIR [--n 200] [--size 128]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from catalog.au_schema import OPENFACE_17, AUSchema
from data.au_table import save_au_table_csv

DRIVEN_AUS = ("AU01", "AU02", "AU04", "AU12", "AU26")


def _colour(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, 3))


def draw_face(aus: dict[str, float], size: int, rng: np.random.Generator) -> Image.Image:
    """Render one face; ``aus`` holds raw 0..5 intensities of DRIVEN_AUS."""
    s = size / 128.0
    img = Image.new("RGB", (size, size), _colour(rng, 0, 256))
    d = ImageDraw.Draw(img)
    skin = _colour(rng, 140, 256)
    d.ellipse([16 * s, 10 * s, 112 * s, 122 * s], fill=skin)
    brow_up = (aus["AU01"] + aus["AU02"]) / 10.0 * 8 * s  # raised brows move up to 8 px at 128
    brow_down = aus["AU04"] / 5.0 * 5 * s
    tilt = aus["AU04"] / 5.0 * 4 * s  # lowered brows also slant towards the nose
    for side in (-1, 1):
        cx = 64 * s + side * 22 * s
        d.ellipse([cx - 6 * s, 50 * s, cx + 6 * s, 58 * s], fill=(255, 255, 255))
        d.ellipse([cx - 3 * s, 51 * s, cx + 3 * s, 57 * s], fill=(30, 20, 10))
        y = 42 * s - brow_up + brow_down
        inner, outer = cx - side * 9 * s, cx + side * 9 * s
        d.line([outer, y, inner, y + tilt], fill=(50, 30, 20), width=max(1, int(3 * s)))
    d.line([64 * s, 60 * s, 60 * s, 78 * s, 66 * s, 78 * s], fill=(120, 80, 60), width=max(1, int(2 * s)))
    half_width = (14 + aus["AU12"] / 5.0 * 8) * s
    corner_lift = aus["AU12"] / 5.0 * 6 * s
    opening = (1 + aus["AU26"] / 5.0 * 14) * s
    top = 94 * s
    d.polygon([(64 * s - half_width, top - corner_lift), (64 * s, top), (64 * s + half_width, top - corner_lift),
               (64 * s, top + opening)], fill=(120, 20, 30))
    return img


def random_aus(rng: np.random.Generator, schema: AUSchema) -> np.ndarray:
    """Sparse, like real expressions: each driven AU active with probability 0.4."""
    vec = np.zeros(schema.n)
    for name in DRIVEN_AUS:
        if rng.random() < 0.4:
            vec[schema.index(name)] = round(float(rng.uniform(0.5, 5.0)), 2)
    return vec


def make_dataset(out: str | Path, n: int = 200, size: int = 128, seed: int = 0, schema: AUSchema = OPENFACE_17,
                 table: str = "csv", image_mode: str = "RGB", ext: str = ".jpg") -> Path:
    """OUT/imgs/faceNNNN.jpg + an AU table (aus.csv, aus.json or aus_openface.pkl). No id lists."""
    out = Path(out)
    (out / "imgs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    aus = {}
    for i in range(n):
        name = f"face{i:04d}"
        vec = random_aus(rng, schema)
        driven = {k: float(vec[schema.index(k)]) for k in DRIVEN_AUS}
        draw_face(driven, size, rng).convert(image_mode).save(out / "imgs" / f"{name}{ext}", quality=95)
        aus[name] = vec
    if table == "csv":
        save_au_table_csv(aus, out / "aus.csv", schema)
    elif table == "json":
        (out / "aus.json").write_text(json.dumps({k: v.tolist() for k, v in aus.items()}))
    elif table == "pkl":
        import pickle
        (out / "aus_openface.pkl").write_bytes(pickle.dumps(aus))
    else:
        raise ValueError(f"unknown table format {table}")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise SystemExit(f"error: {args.out} exists and is not empty; choose another folder")
    make_dataset(args.out, n=args.n, size=args.size, seed=args.seed)
    print(f"wrote {args.n} synthetic faces and aus.csv to {args.out}")


if __name__ == "__main__":
    main()
