"""One result/source/template pair of ``python -m metrics.evaluate``: its dataset and emotion group, its FACS codes,
the analysis of its clips and every registered metric on them.

``evaluate_entry`` reads and analyses one pair and returns its record; ``score_pair`` turns analysed clips into
metric values. The batch around them (summaries, pooled FD/FID, the files written, the command line) is in
``metrics/evaluate.py``.
"""
from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from catalog.datasets import DATASETS, DEFAULT_FPS, EMOTION_ALIASES, dataset_in_name
from media.images import load_rgb
from metrics import au, frechet, identity, motion, quality, texture, timeline
from metrics.analysis import ClipAnalysis, Tools, analyse
from metrics.inputs import ResultEntry, Sequence, match, read_driven
from metrics.integrity import check_pair
from metrics.registry import CONTROLLED, METRICS, control_name

log = logging.getLogger("metrics.evaluate")  # the command's one logger, whichever module reports

# A word in a pair name -> its emotion group: every dataset's labels, and the short forms folded onto them.
EMOTIONS = {**{label: EMOTION_ALIASES.get(label, label) for d in DATASETS.values() for label in d.emotions},
            **EMOTION_ALIASES}


# ---------------------------------------------------------------------------------------- names -> groups

def parse_group(*names: str) -> tuple[str, str]:
    """(dataset, emotion) read from pair / clip names like ``casme2_Positive_asianFemale``; "all" when unknown."""
    text = " ".join(n for n in names if n).lower()
    found = dataset_in_name(text)
    dataset = found.key if found is not None else "all"
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
    if (named := dataset_in_name(names)) is not None:
        return float(named.fps)
    return float(entry.generated.video_fps() or DEFAULT_FPS)


def json_safe(value):
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
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
    if src is not None:
        values, details = source_scores(gen, src, fps)
        m.update(values)
    elif entry.run and entry.run.get("apex") is not None:
        _run_apex(entry, gen, fps, m, details)
    driven = _driven_columns(entry, n)
    if driven is not None:
        values, cols = driven
        m["au_mae"] = _compute("au_mae", values, gen.aus[:, cols])
        details["au_mae_per_au"] = {OPENFACE_AUS[c]: au.au_mae(values[:, i], gen.aus[:, c]) for i, c in enumerate(cols)}
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


def source_scores(gen: ClipAnalysis, src: ClipAnalysis, fps: float) -> tuple[dict, dict]:
    """The metrics that compare the result's movement with a source clip's (``CONTROLLED`` in the registry), and
    their details. The source's curves are put on the result's frames by normalised time (``timeline``)."""
    n = gen.length
    m: dict = {}
    src_aus = timeline.resample(src.aus, n)
    details: dict = {"au_r_per_au": au.per_au_correlation(src_aus, gen.aus)}
    m["au_r"] = _compute("au_r", src_aus, gen.aus)
    gen_apex, src_apex = au.apex_frame(gen.aus), au.apex_frame(src.aus)
    m["apex_error_frames"] = _compute("apex_error_frames", src_apex, gen_apex, src.length, n)
    m["apex_error_ms"] = _compute("apex_error_ms", src_apex, gen_apex, src.length, n, fps)
    details["apex"] = {"reference": "source clip (re-measured AUs)", "reference_frame": src_apex,
                       "result_frame": gen_apex, "fps": fps}
    if src.profiles is not None and gen.profiles is not None:
        _motion(src, gen, m, details)
    if src.texture is not None and gen.texture is not None:
        src_texture = timeline.resample_profiles(src.texture, n)
        m["texture_r"] = _compute("texture_r", src_texture, gen.texture)
        details["texture_r_per_region"] = texture.per_region_texture_r(src_texture, gen.texture)
        details["texture_peak_change"] = {"source": _peaks(src.texture), "result": _peaks(gen.texture)}
    return m, details


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


def _peaks(profiles: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Region -> the largest absolute change (for the report; the sign is in the profile)."""
    return {r: float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else None for r, v in profiles.items()}


def _run_apex(entry: ResultEntry, gen: ClipAnalysis, fps: float, m: dict, details: dict) -> None:
    """Without a source: the apex recorded by the run (an AU matrix's trajectory) is the reference."""
    gen_apex, ref_apex = au.apex_frame(gen.aus), int(entry.run["apex"])
    m["apex_error_frames"] = _compute("apex_error_frames", ref_apex, gen_apex, gen.length, gen.length)
    m["apex_error_ms"] = _compute("apex_error_ms", ref_apex, gen_apex, gen.length, gen.length, fps)
    details["apex"] = {"reference": "run.json apex (driving trajectory)", "reference_frame": ref_apex,
                       "result_frame": gen_apex, "fps": fps}


def control_scores(gen: ClipAnalysis, control: ClipAnalysis, fps: float) -> dict:
    """The wrong-clip control: the source-comparing metrics of the same result against another clip, under their
    ``<name>_control`` columns. A control clip of another length is resampled onto the result's frames by
    normalised time, exactly as the right source is."""
    values, _ = source_scores(gen, control, fps)
    return {control_name(name): values.get(name) for name in CONTROLLED}


def source_analysis(clip: Sequence, tools: Tools, flow: str, rate: float, cache: dict,
                    inception: frechet.InceptionFeatures | None) -> ClipAnalysis:
    """A source clip's measurements, once per batch: a batch drives several templates with one clip, and the same
    clips serve as other pairs' wrong-clip controls."""
    key = (str(clip.path), flow)
    if key not in cache:
        frames = clip.load()
        analysis = analyse(frames, tools, flow, fps=rate, persist=True)  # kept across runs (clip_cache.py)
        if inception is not None:
            analysis.inception = inception.features(frames)
        cache[key] = analysis  # only once complete: a failure here leaves nothing half-measured for the next pair
    return cache[key]


def evaluate_entry(entry: ResultEntry, tools: Tools, fps: float | None, flow: str, coded_clips: list[CodedClip],
                   cache: dict, figures: bool, inception: frechet.InceptionFeatures | None = None) -> PairOutcome:
    if entry.error:
        raise ValueError(entry.error)
    notes = list(entry.notes)
    # descriptors serve identity (needs the template) and FD (needs the source)
    frames = entry.generated.load()
    rate = clip_fps(entry, fps)
    gen = analyse(frames, tools, flow, describe=entry.template is not None or entry.source is not None, fps=rate)
    if inception is not None:  # FID: the full frames as decoded, not the canonical face crops
        gen.inception = inception.features(frames)
    del frames
    src = source_analysis(entry.source, tools, flow, rate, cache, inception) if entry.source is not None else None
    control = None
    if entry.control is not None:
        control = source_analysis(entry.control, tools, flow, rate, cache, inception)
    tpl = analyse(load_rgb(entry.template)[None], tools, None, persist=True) if entry.template is not None else None
    coded, problem = codes_for(entry, coded_clips)
    if problem:
        notes.append(problem)
    metrics, details = score_pair(entry, gen, src, tpl, rate, coded)
    if control is not None:
        metrics.update(control_scores(gen, control, rate))
        details["control"] = {"source": str(entry.control.path), "frames": control.length,
                              "aligned": timeline.alignment_note(control.length, gen.length)}
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
    outcome = PairOutcome(json_safe(record), descriptors=gen.descriptors, inception=gen.inception)
    if figures:
        from metrics.report import pair_figures

        try:
            outcome.figures = pair_figures(outcome.record, gen, src, tpl)
        except Exception as err:  # a plotting problem must not cost the pair its metrics
            log.error("%s: figures failed: %s", entry.name, err)
            outcome.record["notes"].append(f"report figures failed: {err}")
    return outcome
