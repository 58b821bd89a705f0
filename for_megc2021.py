"""MEGC batch driver: every (source clip x template) pair, in one process, with the model loaded once.

    # MEGC2021 / ULME-GAN layout: one folder per pair (imgs/, imgs2/, csvs/, csvs2/, aus_openface.pkl)
    python for_megc2021.py --megc_root test/ --ckpt_dir RUN --load_epoch latest --re_code --linear_fitting
    # MEGC2022 form: clip folders (imgs/ + csvs/ or an AU table) x template images (9 x 4 = 36 pairs)
    python for_megc2021.py --clips clips/ --templates templates/ --ckpt_dir RUN --re_code --linear_fitting

Every test-mode flag of main.py applies to each pair. ``--dry_run`` lists the pairs and their output folders.
A failing pair is reported and the others go on. ``index.csv`` (one row per pair, rewritten after each pair, so an
interrupted batch keeps its record) and at the end ``contact_sheet.png`` (one row per pair: template | source apex |
generated apex) in ``--results_dir``; a later batch in the same folder writes ``index_2.csv`` and
``contact_sheet_2.png`` (never overwrites; the name is claimed atomically, so two batches at once get two indexes).

Rerunning a batch (after Ctrl-C, or with more pairs) reuses each result folder whose ``run.json`` records the same
request: the same checkpoint file (size and modification time), AU-response curves, estimator calibration, settings,
and input files (names, sizes and modification times of the pair's clip folder and template). Anything else is
generated into a new folder (``_2``), never over an earlier result.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw
from tqdm import tqdm

from media.images import list_images, load_rgb, natural_key
from media.signature import files_signature
from monitor.logs import setup_logging
from options import apply_preset, build_parser, check_mode_flags, explicit_flags
from solvers import pair_input
from solvers.composition import (
    generation_checkpoint,
    motion_settings,
    preset_record,
    speed_settings,
    trajectory_settings,
    write_videos,
)
from solvers.distributed import select_device
from solvers.run_folder import remove_stale_temp
from solvers.tester import (
    SequenceGenerator,
    SequenceOutput,
    SequenceResult,
    apex_still,
    check_output_folder,
    generate_sequence,
    generation_request,
    template_pixels,
    unique_folder,
)

log = logging.getLogger("for_megc2021")

INDEX_FIELDS = ("pair", "clip", "template", "status", "frames", "apex", "fps", "frames_per_s", "out_dir", "error")


@dataclass
class Pair:
    name: str
    clip_dir: Path
    template: Path | None  # None: the template is the pair folder's imgs2/


def parse(argv: list[str] | None):
    parser = build_parser(eval_flags=False)  # its own --templates: a folder of template images
    parser.prog = "for_megc2021.py"
    g = parser.add_argument_group("batch")
    g.add_argument("--megc_root", default=None, help="folder of pair folders in the ULME-GAN test layout")
    g.add_argument("--clips", default=None, help="folder of clip folders (MEGC2022 form, with --templates)")
    g.add_argument("--templates", default=None, help="folder of template face images")
    g.add_argument("--dry_run", action="store_true", help="list pairs and output folders, generate nothing")
    parser.set_defaults(mode="test", results_dir="./results/megc")
    argv = sys.argv[1:] if argv is None else argv
    opt = parser.parse_args(argv)
    opt.explicit = sorted(explicit_flags(parser, argv))  # as main.py: which flags were typed (e.g. --ckpt_dir)
    apply_preset(opt)  # --mode is test here: a preset's test settings
    if bool(opt.megc_root) == bool(opt.clips):
        parser.error("give either --megc_root, or --clips with --templates")
    if opt.clips and not opt.templates:
        parser.error("--clips needs --templates")
    for flag, why in not_for_a_batch(opt):
        parser.error(f"{flag} does not apply to for_megc2021.py{why}")
    check_mode_flags(parser, opt)  # as main.py --mode test: a flag test mode does not read is refused or warned
    return opt


def not_for_a_batch(opt) -> list[tuple[str, str]]:
    """Flags main.py's test mode takes that a batch would ignore, with what to do instead."""
    found = []
    if opt.megc_root and opt.templates:
        found.append(("--templates", " with --megc_root: each pair folder's template is its imgs2/ (--templates "
                                     "goes with --clips)"))
    for flag, dest, why in (("--aus_matrix", "aus_matrix", ": the pairs are driven by their clips; drive a template "
                             "by an AU matrix with main.py --mode test"),
                            ("--data_root", "data_root", ": give the pairs with --megc_root or --clips"),
                            ("--test_mode", "test_mode", ": N2ME's two-stage pipeline is main.py --mode test")):
        if dest in opt.explicit:
            found.append((flag, why))
    return found


def find_pairs(opt) -> list[Pair]:
    if opt.megc_root:
        root = Path(opt.megc_root)
        if not root.is_dir():
            raise FileNotFoundError(f"--megc_root {root} does not exist")
        folders = sorted((p for p in root.iterdir() if (p / "imgs").is_dir()), key=lambda p: natural_key(p.name))
        if not folders:
            raise FileNotFoundError(f"--megc_root {root}: no pair folders (a folder with imgs/ and imgs2/) in it")
        return [Pair(p.name, p, None) for p in folders]
    for flag, folder, holding in (("--clips", Path(opt.clips), "clip folders (each with imgs/)"),
                                  ("--templates", Path(opt.templates), "template face images")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{flag} {folder}: {'not a folder' if folder.exists() else 'does not exist'}; "
                                    f"give a folder of {holding}")
    clips = sorted((p for p in Path(opt.clips).iterdir() if (p / "imgs").is_dir()), key=lambda p: natural_key(p.name))
    if not clips:
        raise FileNotFoundError(f"--clips {opt.clips}: no clip folders (a folder with imgs/) in it")
    templates = list(list_images(opt.templates).values())
    if not templates:
        raise FileNotFoundError(f"--templates {opt.templates}: no images in it (.jpg, .png, ...)")
    return [Pair(f"{c.name}_{t.stem}", c, t) for c in clips for t in templates]


def load_batch_pair(pair: Pair, model: SequenceGenerator, re_code: bool, opt):
    """The pair's clip and template (test mode's loader); with --pre_treatment, AUs measured by the chosen backend."""
    return pair_input.load_pair(pair.clip_dir, model.schema, re_code=re_code,
                           au_backend=opt.au_backend if opt.pre_treatment else "table", openface_bin=opt.openface_bin,
                           template=opt.template, template_image=pair.template, name=pair.name, clip_aus=opt.clip_aus)


def reusable(results_dir: Path, base: str, request: dict) -> Path | None:
    """An earlier batch's complete result folder for this pair (``base`` or ``base_N``) with the same request."""
    for folder in sorted(results_dir.glob(f"{base}*"), key=lambda p: natural_key(p.name)):
        if folder.name != base and not folder.name[len(base):].lstrip("_").isdigit():
            continue
        try:
            if json.loads((folder / "run.json").read_text()).get("request") == request:
                return folder
        except (OSError, ValueError):
            continue  # not a finished result: not reused
    return None


def run_batch(opt) -> int:
    setup_logging(None, True)
    pairs = find_pairs(opt)
    device = select_device(opt.gpu_ids, 0)
    model = SequenceGenerator(generation_checkpoint(opt), device, opt.batch_size, opt.amp,
                              speed_settings(opt, device))
    traj = trajectory_settings(opt)
    motion = motion_settings(opt)
    out = SequenceOutput(output_size=opt.output_size, fps=opt.fps, videos=write_videos(opt), preset=preset_record(opt),
                         max_frames=opt.max_dataset_size)
    results_dir = Path(opt.results_dir)
    suffix = f"{model.model_args['name']}_{model.epoch}_{traj.folder_tag()}{motion.folder_tag()}"
    if opt.dry_run:
        for pair in pairs:
            print(f"{pair.name}: {pair.clip_dir} x {pair.template or 'imgs2/'} -> {results_dir / pair.name}_{suffix}")
        return 0
    check_output_folder(results_dir, "--results_dir")
    results_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(results_dir)  # hidden half-written result folders of a killed batch
    index_path, sheet_path = batch_output_paths(results_dir)
    rows, sheet = [], []
    settings = generation_request(model, traj, out, pre_treatment=opt.pre_treatment, au_backend=opt.au_backend,
                                  template=opt.template, clip_aus=opt.clip_aus,
                                  motion=asdict(motion))
    for pair in tqdm(pairs, desc="pairs", disable=opt.no_progress):
        row = {"pair": pair.name, "clip": str(pair.clip_dir), "template": str(pair.template or "imgs2/")}
        try:
            clip, template = load_batch_pair(pair, model, traj.re_code, opt)
            request = json.loads(json.dumps({**settings, "inputs": files_signature([pair.clip_dir, template.path])}))
            base = f"{pair.name}_{suffix}"
            res = reuse(results_dir / base, reusable(results_dir, base, request))
            if res is None:
                res = generate_sequence(model, clip, template, unique_folder(results_dir / base), traj, out,
                                        request=request, motion=motion)
            row.update(status="ok", frames=res.frames, apex=res.apex, fps=res.fps,
                       frames_per_s=round(res.frames_per_s, 2), out_dir=str(res.out_dir),
                       template=str(template.path))
            sheet.append((pair.name, template, clip.frames[res.apex] if clip.frames else None, res.out_dir,
                          res.apex))
        except Exception as err:  # one bad pair must not cost the other results
            log.error("%s failed: %s", pair.name, err)
            row.update(status="failed", error=str(err).splitlines()[0])
        rows.append(row)
        write_index(rows, index_path)  # after every pair: Ctrl-C or a crash keeps the record of what is done
    if sheet:
        batch_contact_sheet(sheet).save(sheet_path)
    failed = [r["pair"] for r in rows if r["status"] != "ok"]
    log.info("%d of %d pairs done -> %s%s", len(rows) - len(failed), len(rows), results_dir,
             f"; failed: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


def reuse(wanted: Path, found: Path | None):
    """The record of an earlier result folder made from the same request, or None."""
    if found is None:
        return None
    run = json.loads((found / "run.json").read_text())
    log.info("%s: the result of the same checkpoint, settings and inputs is already in %s: kept, not generated "
             "again", wanted.name, found)
    return SequenceResult(found, run["frames"], run["apex"], run["fps"], run["generation_seconds"],
                          run["frames_per_s"])


def batch_output_paths(results_dir: Path) -> tuple[Path, Path]:
    """index.csv and contact_sheet.png, or index_N.csv and contact_sheet_N.png when an earlier batch in the same
    --results_dir wrote them: a batch never overwrites another's records (as result folders get _N). The index
    name is claimed by creating the file (exclusively), so two batches at once never share one."""
    n, suffix = 1, ""
    while True:
        if not (results_dir / f"contact_sheet{suffix}.png").exists():
            try:
                with open(results_dir / f"index{suffix}.csv", "x") as fh:
                    fh.write(",".join(INDEX_FIELDS) + "\n")
                break
            except FileExistsError:
                pass
        n += 1
        suffix = f"_{n}"
    if suffix:
        log.warning("%s already holds an earlier batch's index.csv: writing index%s.csv and contact_sheet%s.png",
                    results_dir, suffix, suffix)
    return results_dir / f"index{suffix}.csv", results_dir / f"contact_sheet{suffix}.png"


def write_index(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in INDEX_FIELDS})
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)  # whole or not at all


def batch_contact_sheet(entries: list, cell: int = 128, label_h: int = 16) -> Image.Image:
    """One row per pair: template | source apex | generated apex, with the pair name above."""
    sheet = Image.new("RGB", (3 * cell, len(entries) * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, template, source_apex, out_dir, apex) in enumerate(entries):
        top = r * (cell + label_h)
        draw.text((2, top + 2), name, fill="black")
        stills = [Image.fromarray(template_pixels(template, cell)),
                  Image.fromarray(load_rgb(source_apex, cell)) if source_apex else Image.new("RGB", (cell, cell)),
                  apex_still(out_dir, apex).resize((cell, cell), Image.Resampling.LANCZOS)]
        for c, img in enumerate(stills):
            sheet.paste(img, (c * cell, top + label_h))
    return sheet


def main(argv: list[str] | None = None) -> int:
    opt = parse(argv)
    try:
        return run_batch(opt)
    except (OSError, ValueError, KeyError) as err:  # bad input, or an output folder that cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the pairs done are listed in the index in {opt.results_dir}; run the same command to "
              f"go on (finished results are kept, not generated again)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
