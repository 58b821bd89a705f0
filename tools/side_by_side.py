"""The bundled model against ULME-GAN's submitted MEGC2021 videos: one command, one table, one contact sheet.

    python -m tools.side_by_side --megc_root ../shared/data/megc2021 \
        --ulme ../shared/data/ulme_megc2021_results --out results/side_by_side [--ours DIR] \
        [--system "LABEL=DIR" ...] [-- GENERATION FLAGS]

1. Ours: ``for_megc2021.py --megc_root ROOT --re_code --linear_fitting --no_video`` with the bundled model (ULME's
   own trajectory flags), plus any flags after ``--`` (e.g. ``-- --no_calibration`` or ``-- --au_mode
   absolute``); or an existing batch folder with ``--ours``.
2. ULME-GAN: its result folders hold ``source.mp4`` and ``target.mp4`` besides the frames, which the evaluator
   would score as two more results per pair; a frames-only view (links to the images) is scored instead.
3. Further rows: ``--system LABEL=DIR`` (repeatable), any results folder the evaluator reads.
4. Every system through ``metrics.evaluate`` with the same ``--sources ROOT --templates ROOT --fps 200``, in one
   process (the source clips are measured once).
5. OUT/table.md and table.json: one row per system (a list of (label, results folder); the first, ULME-GAN, is the
   reference), the means over pairs, each motion metric followed by its wrong-clip control ("ctl": the same result
   scored against another clip's source; see docs/evaluation.md); then per other system its difference from the
   reference and the issue-13 targets. OUT/contact_sheet.png: one row per pair, template | source apex | ULME-GAN
   apex | each other system at the apex (``--cell 192`` for a 2x zoom).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from catalog.datasets import DATASETS
from media.images import IMAGE_EXTENSIONS, list_images, load_rgb, natural_key
from metrics.registry import CONTROLLED, control_name

COLUMNS = ("au_r", "flow_r", "flow_amplitude_error", "apex_error_ms", "texture_r", "identity_distance",
           "identity_same_rate", "ssim_static", "flicker", "fd_dlib128", "onset_fidelity", "artifact_rate")
# Issue 13's "done" line, relative to ULME-GAN's value u: (label, test(ours, u)).
TARGETS = {
    "au_r": (">= ULME", lambda o, u: o >= u),
    "flow_r": (">= ULME", lambda o, u: o >= u),
    "flow_amplitude_error": ("<= ULME", lambda o, u: o <= u),
    "identity_distance": ("<= 0.35", lambda o, u: o <= 0.35),
    "identity_same_rate": ("= 1.0", lambda o, u: o >= 1.0),
    "ssim_static": (">= ULME - 0.02", lambda o, u: o >= u - 0.02),
}
FPS = float(DATASETS["casme2"].fps)  # the MEGC2021 pairs: CASME II and SAMM clips, one rate
ROOT = Path(__file__).resolve().parents[1]


def frames_only_view(results: Path, out: Path) -> Path:
    """A tree mirroring ``results`` with links to its image files only (no videos), one folder per pair."""
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        images = [f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS]
        if not images:
            continue
        target = out / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for f in images:
            link = target / f.name
            if not link.exists():
                os.symlink(f.resolve(), link)
    return out


def generate_ours(megc_root: Path, out: Path, extra: list[str]) -> Path:
    """for_megc2021.py as a user runs it (a script, so it runs as one; nothing in the package imports it)."""
    argv = [sys.executable, str(ROOT / "for_megc2021.py"), "--megc_root", str(megc_root), "--re_code",
            "--linear_fitting", "--no_video", "--results_dir", str(out), "--no_progress", *extra]
    if subprocess.run(argv, check=False).returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed")
    return out


def table_columns() -> tuple[str, ...]:
    """COLUMNS with each motion metric's wrong-clip control right after it."""
    return tuple(name for c in COLUMNS for name in ((c, control_name(c)) if c in CONTROLLED else (c,)))


def heading(column: str) -> str:
    return column.removesuffix("_control") + " ctl" if column.endswith("_control") else column


def mean_row(doc: dict) -> dict:
    (row,) = [r for r in doc["summary"] if r["dataset"] == "all" and r["emotion"] == "all"]
    return {name: row.get(name) for name in table_columns()} | {"pairs": row["pairs"]}


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.3f}"


def comparison_table(rows: dict[str, dict]) -> str:
    """Systems as rows (the first is the reference), metrics as columns with their wrong-clip controls ("ctl")
    beside them; then for every other system its difference from the reference and whether each issue-13 target
    is met."""
    columns = table_columns()
    (ref_name, ref), *others = rows.items()
    head = "| | pairs | " + " | ".join(map(heading, columns)) + " |\n| --- | --- |" + " --- |" * len(columns)
    lines = [head] + [f"| {name} | {r['pairs']} | " + " | ".join(_fmt(r.get(c)) for c in columns) + " |"
                      for name, r in rows.items()]
    for name, row in others:
        diff = ["" if c not in COLUMNS else
                _fmt(row[c] - ref[c]) if row.get(c) is not None and ref.get(c) is not None else "-" for c in columns]
        lines.append(f"| {name} - {ref_name} | | " + " | ".join(diff) + " |")
        lines.append(f"| {name}: target | | " + " | ".join(_verdict(c, row, ref) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _verdict(column: str, row: dict, ref: dict) -> str:
    if column not in TARGETS or row.get(column) is None or ref.get(column) is None:
        return ""
    label, ok = TARGETS[column]
    return f"{label}: {'met' if ok(row[column], ref[column]) else 'missed'}"


def _cell(img: Image.Image | np.ndarray | None, size: int) -> Image.Image:
    if img is None:
        return Image.new("RGB", (size, size), "grey")
    img = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    return img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def _frames(folder: Path) -> list[Path]:
    folder = folder / "frames" if (folder / "frames").is_dir() else folder
    return sorted(list_images(folder).values(), key=lambda p: natural_key(p.name))


def comparison_sheet(megc_root: Path, ulme: Path, systems: list[tuple[str, Path]], cell: int = 96) -> Image.Image:
    """template | source apex | ULME-GAN apex | each of ``systems`` (label, batch folder) at the apex, one row per
    pair; the apex is the first system's (its run.json), so every column shows the same moment."""
    heads = ("template", "source apex", "ULME apex", *(label for label, _ in systems))
    pairs = sorted((p for p in megc_root.iterdir() if (p / "imgs").is_dir()), key=lambda p: natural_key(p.name))
    label_h = 14
    sheet = Image.new("RGB", (len(heads) * cell, label_h + len(pairs) * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, h in enumerate(heads):
        draw.text((c * cell + 2, 1), h[:16], fill="black")
    for r, pair in enumerate(pairs):
        dirs = [next((d for d in folder.iterdir() if d.name.startswith(pair.name + "_") and d.is_dir()), None)
                for _, folder in systems]
        ulme_dir = next((d for d in ulme.iterdir() if d.name.startswith(pair.name + "_")), None)
        run = json.loads((dirs[0] / "run.json").read_text()) if dirs and dirs[0] else {}
        apex = int(run.get("apex", 0))
        source = _frames(pair / "imgs")
        template = next(iter(list_images(pair / "imgs2").values()), None)
        columns = [_frames(ulme_dir) if ulme_dir else []] + [_frames(d) if d else [] for d in dirs]
        stills = [load_rgb(template, cell) if template else None, load_rgb(source[apex], cell),
                  *(load_rgb(f[apex], cell) if len(f) > apex else None for f in columns)]
        top = label_h + r * (cell + label_h)
        draw.text((2, top + 1), f"{pair.name} (apex frame {apex})", fill="black")
        for c, img in enumerate(stills):
            sheet.paste(_cell(img, cell), (c * cell, top + label_h))
    return sheet


def scored(results: Path, megc_root: Path, out: Path, command: str, reuse: bool) -> dict:
    """metrics.evaluate on one system; with ``reuse``, an earlier metrics.json in ``out`` scored on the same inputs."""
    from metrics.evaluate import evaluate

    earlier = out / "metrics.json"
    if reuse and earlier.is_file():
        doc = json.loads(earlier.read_text())
        if doc["inputs"]["results"] == str(results) and doc["inputs"]["sources"] == str(megc_root):
            print(f"reusing {earlier} (scored by: {doc['command']})")
            return doc
    return evaluate(results, megc_root, megc_root, out, FPS, report=False, progress=True, command=command)


def run_comparison(megc_root: Path, ulme: Path, out: Path, ours: Path | None, extra: list[str], command: str,
                   reuse: bool = False, only_ulme: bool = False, more: list[tuple[str, Path]] = (),
                   ours_label: str = "ours (bundled model)", cell: int = 96) -> dict | None:
    """Score every system (ULME-GAN, ours, then ``more``: (label, results folder)) and write the table."""
    out.mkdir(parents=True, exist_ok=True)
    ulme_view = frames_only_view(ulme, out / "ulme_frames")
    systems = [("ULME-GAN submitted", ulme_view)]
    if not only_ulme:
        ours = ours or generate_ours(megc_root, out / "ours", extra)
        systems += [(ours_label, ours), *more]
    folders = ["eval_ulme", "eval_ours"] + [f"eval_{_slug(label)}" for label, _ in more]  # --reuse_eval finds them
    docs = {label: scored(folder, megc_root, out / name, command, reuse)
            for (label, folder), name in zip(systems, folders)}
    if only_ulme:
        return None
    rows = {name: mean_row(doc) for name, doc in docs.items()}
    table = comparison_table(rows)
    (out / "table.md").write_text(f"`{command}`\n\n{table}")
    per_pair = {name: {r["pair"]: {c: r["metrics"].get(c) for c in table_columns()} for r in doc["pairs"]}
                for name, doc in docs.items()}
    record = {"command": command, "systems": {label: str(folder) for label, folder in systems},
              "generation_flags": extra, "means": rows, "per_pair": per_pair,
              "control": {name: doc["batch"].get("control") for name, doc in docs.items()}}
    (out / "table.json").write_text(json.dumps(record, indent=1) + "\n")
    comparison_sheet(megc_root, ulme_view, systems[1:], cell).save(out / "contact_sheet.png", optimize=True)
    print(table)
    return record


def _slug(label: str) -> str:
    """A folder name from a row label: letters, digits and '-' only."""
    return "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-")


def parse_system(text: str) -> tuple[str, Path]:
    """``LABEL=DIR`` -> (label, folder)."""
    label, sep, folder = text.partition("=")
    if not sep or not label.strip() or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=DIR (a row label and a results folder)")
    return label.strip(), Path(folder)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="python -m tools.side_by_side", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--megc_root", type=Path, required=True, help="the 12 pair folders (sources and templates)")
    p.add_argument("--ulme", type=Path, required=True, help="ULME-GAN's submitted result folders")
    p.add_argument("--out", type=Path, default=Path("results/side_by_side"))
    p.add_argument("--ours", type=Path, default=None, help="an existing for_megc2021.py batch folder (no generation)")
    p.add_argument("--reuse_eval", action="store_true",
                   help="keep OUT/eval_*/metrics.json of an earlier run when it scored the same folders")
    p.add_argument("--only_ulme", action="store_true", help="score ULME-GAN's results only (to reuse later)")
    p.add_argument("--ours_label", default="ours (bundled model)", help="the table's name for --ours (or the batch)")
    p.add_argument("--cell", type=int, default=96, help="contact-sheet cell size in pixels (e.g. 192 for 2x zoom)")
    p.add_argument("--system", type=parse_system, action="append", default=[], metavar="LABEL=DIR",
                   help="one more row: a label and a results folder (repeat for more)")
    args = p.parse_args(own)
    if args.only_ulme and args.system:
        print("error: --system adds rows to the table, which --only_ulme does not write", file=sys.stderr)
        return 2
    for path in (args.megc_root, args.ulme, *(folder for _, folder in args.system)):
        if not path.is_dir():
            print(f"error: {path} is not a folder", file=sys.stderr)
            return 2
    from monitor.logs import setup_logging

    setup_logging(None, True)  # the evaluator's per-pair progress lines
    command = shlex.join(["python", "-m", "tools.side_by_side", *argv])
    run_comparison(args.megc_root, args.ulme, args.out, args.ours, extra, command, args.reuse_eval, args.only_ulme,
                   args.system, args.ours_label, args.cell)
    return 0


if __name__ == "__main__":
    sys.exit(main())
