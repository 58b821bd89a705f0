"""Fit the built-in AU estimator against real OpenFace output, and report the agreement leave-one-clip-out.

    python -m openface.calibrate --megc_root ../shared/data/megc2021 [--cache results/megc_faces.npz]
                                 [--out openface/au_calibration.json] [--fps 200] [--codes clips.csv]
    python -m openface.calibrate --clips MY_CLIPS --openface_csvs MY_OPENFACE_OUTPUT --fps 200 --out my.json

Data: the 6 distinct clips of an ULME-style MEGC package (CASME II and SAMM at 200 fps), whose ``csvs/`` hold
OpenFace 2 FaceLandmarkImg results per frame (``openface.megc_clips``; MediaPipe runs once, ``--cache`` keeps it);
or a researcher's own tree of clips with OpenFace's output for each (``openface.clip_tree``). The fitted file is
used instead of the shipped one when ``$MEGAN_AU_CALIBRATION`` names it.

Fitted, on all clips, and written with full precision:
- per image, per AU a line ``OpenFace = gain * score + offset`` (gain >= 0) by least squares over all frames;
- per clip (``openface.au_sequence``), the spread of each source within a clip (pooled standard deviation)
  and one gain per AU: OpenFace's within-clip spread per unit of summed change.

Reported: within-clip Pearson r between the estimator and OpenFace, each clip predicted by a calibration fitted on
the other clips only (leave-one-clip-out), for the AUs that move in that clip (OpenFace's curve spans
>= ``MIN_RANGE``, as ``au_r`` counts them); a flat estimate counts as r = 0. Per AU the Fisher mean over the clips,
overall the Fisher mean over the AUs. The per-image mode is reported beside it, and what the reference allows
(``openface.reference_limits``): a noise ceiling, the agreement of OpenFace's own curve smoothed over its
neighbouring frames, and how much OpenFace's curve follows the eyes' horizontal gaze. With ``--codes`` (the CSV of
``python -m data.annotations`` over the CASME II and SAMM coding sheets), the same leave-one-clip-out r on the AUs
the datasets' coders saw move, each coded AU's rise from the onset to the coded apex (``openface.facs_check``),
and how far the estimated apex lies from the coded one.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from catalog.datasets import DATASETS, fps_summary
from openface.au_curves import apex_frame
from openface.au_estimator import CALIBRATION_FILE, Calibration, au_features
from openface.au_geometry import MEASURE_NAMES
from openface.au_sequence import (
    SOURCE_NAMES,
    SequenceCalibration,
    au_changes,
    sequence_intensities,
    smooth,
    smoothing_frames,
    source_values,
)
from openface.clip_tree import PER_FRAME_KIND, measure_tree, tree_kind
from openface.facs_check import match_clip, read_codes
from openface.landmarks import Face
from openface.megc_clips import MeasuredClip, measured_clips
from openface.reference_limits import (
    MIN_RANGE,
    fisher_mean,
    gaze_following,
    horizontal_gaze,
    noise_ceiling,
    pearson,
    smooth_ceiling,
)

SIGNAL_AUTOCORRELATION = 0.5  # a secondary view: clip-AU pairs whose OpenFace curve is at least half signal
CLIP_FPS = float(DATASETS["casme2"].fps)  # the MEGC package's clips: CASME II and SAMM, both at this rate
assert DATASETS["samm"].fps == CLIP_FPS, "the MEGC package mixes CASME II and SAMM clips at one rate"


@dataclass
class ClipData:
    name: str
    frames: list[str]
    scores: np.ndarray  # (T, 17) per-image raw scores
    values: np.ndarray  # (T, K) sequence sources
    openface: np.ndarray  # (T, 17)
    gaze: np.ndarray  # (T,) the eyes' horizontal gaze (openface.reference_limits)


def clip_data(clip: MeasuredClip) -> ClipData:
    faces = [Face(lm, dict(zip(clip.blendshape_names, shapes.tolist())), np.eye(4))
             for lm, shapes in zip(clip.landmarks, clip.blendshapes)]
    return ClipData(clip.name, list(clip.frames), np.stack([au_features(f) for f in faces]),
                    np.stack([source_values(f.landmarks, f.blendshapes) for f in faces]), clip.openface,
                    np.array([horizontal_gaze(f.blendshapes) for f in faces]))


# Where the data cannot calibrate an AU (no variation, or OpenFace and the score disagree in sign), the score in
# 0..1 is mapped linearly onto 0..5: a constant would erase the AU, a negative gain would invert it.
PRIOR = (5.0, 0.0)
# The MEGC frames are micro-expressions: blendshape scores there span a few hundredths, and an unbounded fit
# gives gains near 100 that saturate every ordinary expression at 5. Gains are capped so that a score of 0.5
# (a clear macro-expression) reaches full intensity.
MAX_GAIN = 10.0
# An AU that OpenFace hardly moves in the calibration clips (AU25, AU26, AU23 there) gets a gain near 0 from
# them, which would make the sequence mode blind to it. Floor: a change of 3 spreads in two sources (a clear
# micro-expression) then still adds 0.3, more than metrics.au.FACS_RISE (0.25).
MIN_SEQUENCE_GAIN = 0.05
# Floors of the spreads: some blendshapes hardly move in micro-expressions (cheekSquint spreads 1e-8 there), and
# dividing by such a spread would turn MediaPipe's rounding noise into full-scale changes. 1 % of a blendshape's
# range, 0.1 px of a landmark measure (all measured spreads are above it).
MIN_SPREAD = np.array([0.1 if name in MEASURE_NAMES else 0.01 for name in SOURCE_NAMES])


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.std() < 1e-9 or y.std() < 1e-9:
        return PRIOR
    gain, offset = np.polyfit(x, y, 1)
    if gain <= 0:
        return PRIOR
    if gain > MAX_GAIN:  # keep the line through the data's mean point, with the capped slope
        gain, offset = MAX_GAIN, float(y.mean() - MAX_GAIN * x.mean())
    return float(gain), float(offset)


def fit_image(clips: list[ClipData]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.vstack([c.scores for c in clips])
    targets = np.vstack([c.openface for c in clips])
    lines = [fit_line(scores[:, j], targets[:, j]) for j in range(len(OPENFACE_AUS))]
    return np.array([g for g, _ in lines]), np.array([o for _, o in lines])


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


def fit_sequence(clips: list[ClipData], fps: float) -> SequenceCalibration:
    """Spreads of the smoothed sources within clips, then per AU the gain from summed change to OpenFace."""
    window = smoothing_frames(fps)
    smoothed = [_centred(smooth(c.values, window)) for c in clips]
    scales = np.maximum(np.sqrt(np.mean(np.vstack(smoothed) ** 2, axis=0)), MIN_SPREAD)
    change = np.vstack([_centred(au_changes(s, scales)) for s in smoothed])
    target = np.vstack([_centred(c.openface) for c in clips])
    # The gain matches spreads (OpenFace's within-clip spread per unit of summed change) rather than regressing:
    # a regression slope falls to 0 where OpenFace's curve is mostly noise and would switch the AU off.
    gains = np.maximum(MIN_SEQUENCE_GAIN, target.std(axis=0) / np.maximum(change.std(axis=0), 1e-9))
    return SequenceCalibration(scales, gains)


def fit_calibration(clips: list[ClipData], fps: float) -> Calibration:
    gain, offset = fit_image(clips)
    return Calibration(gain, offset, f"python -m openface.calibrate on {len(clips)} clips", fit_sequence(clips, fps))


def predict(clip: ClipData, calibration: Calibration, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(per-image intensities, sequence intensities) of one clip, both (T, 17)."""
    image = calibration.apply(clip.scores)
    return image, sequence_intensities(calibration.linear(clip.scores), clip.values, calibration.sequence, fps)


def with_calibration(clips: list[ClipData], calibration: Calibration, fps: float) -> dict:
    """As ``leave_one_clip_out``, every clip predicted by one given calibration (fitted elsewhere: ``--check``)."""
    out = {}
    for clip in clips:
        image, sequence = predict(clip, calibration, fps)
        out[clip.name] = {"image": (image, clip.openface), "sequence": (sequence, clip.openface)}
    return out


def leave_one_clip_out(clips: list[ClipData], fps: float) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """clip -> mode ("image", "sequence") -> (estimate (T, 17), OpenFace (T, 17)), each clip predicted by a
    calibration fitted without it."""
    out = {}
    for held in clips:
        calibration = fit_calibration([c for c in clips if c is not held], fps)
        image, sequence = predict(held, calibration, fps)
        out[held.name] = {"image": (image, held.openface), "sequence": (sequence, held.openface)}
    return out


def agreement(predictions: dict, mode: str) -> dict:
    """Per AU the within-clip r of every clip where it moves and their Fisher mean; overall the Fisher mean over
    AUs (``fisher_over_aus``) and, as ``au_r`` scores one clip, the mean over clips of each clip's Fisher mean."""
    per_au: dict[str, dict[str, float]] = {au: {} for au in OPENFACE_AUS}
    with_signal = []  # r where OpenFace's curve is more signal than frame-to-frame noise
    for clip, modes in predictions.items():
        estimate, target = modes[mode]
        for j, au in enumerate(OPENFACE_AUS):
            if np.ptp(target[:, j]) >= MIN_RANGE:
                per_au[au][clip] = pearson(estimate[:, j], target[:, j])
                if pearson(target[1:, j], target[:-1, j]) >= SIGNAL_AUTOCORRELATION:
                    with_signal.append(per_au[au][clip])
    au_means = {au: fisher_mean(list(rs.values())) for au, rs in per_au.items() if rs}
    clip_means = [fisher_mean([rs[c] for rs in per_au.values() if c in rs]) for c in predictions]
    return {"per_au": au_means, "per_clip_r": per_au, "fisher_over_aus": fisher_mean(list(au_means.values())),
            "mean_over_clips": float(np.nanmean(clip_means)),
            "with_signal": {"pairs": len(with_signal), "fisher_mean": fisher_mean(with_signal)}}


FACS_RISE = 0.25  # as metrics.au.FACS_RISE: a coded AU "moves" in facs_recall when it rises this much


def coded_agreement(predictions: dict, clips: list[ClipData], rows: list[dict]) -> dict:
    """Per FACS-coded AU of each clip, in both modes: r against OpenFace (where OpenFace's curve moves) and the
    rise from the onset (first 5 frames) to the coded apex (5 frames around it)."""
    pairs, apexes = [], []
    for clip in clips:
        coded = match_clip(clip.name, clip.frames, rows)
        if coded is None:
            continue
        apexes.append(apex_errors(predictions[clip.name], clip.openface, coded.apex))
        apex = slice(max(0, coded.apex - 2), coded.apex + 3)
        for au in coded.aus:
            j = OPENFACE_AUS.index(au)
            entry = {"clip": clip.name, "au": au, "sheet": coded.label}
            for mode, (estimate, target) in predictions[clip.name].items():
                moves = np.ptp(target[:, j]) >= MIN_RANGE
                entry[mode] = {"r": pearson(estimate[:, j], target[:, j]) if moves else None,
                               "rise": float(estimate[apex, j].mean() - estimate[:5, j].mean())}
            pairs.append(entry)
    summary = {}
    for mode in ("sequence", "image"):
        rs = [p[mode]["r"] for p in pairs if p[mode]["r"] is not None]
        rises = [p[mode]["rise"] for p in pairs]
        summary[mode] = {"fisher_r": fisher_mean(rs), "pairs_with_r": len(rs), "rising": sum(x > 0 for x in rises),
                         "rising_by_facs_rise": sum(x >= FACS_RISE for x in rises), "coded": len(rises)}
    summary["apex_error_frames"] = {k: float(np.mean([a[k] for a in apexes])) if apexes else None
                                    for k in ("sequence", "image", "openface")}
    return {"pairs": pairs, "summary": summary}


def apex_errors(modes: dict, openface: np.ndarray, coded_apex: int) -> dict[str, int]:
    """|apex - coded apex| in frames, the apex being the frame of largest summed AU change from the onset
    (``openface.au_curves.apex_frame``, as --mode eval finds it), of each mode's estimate and of OpenFace's own
    curves."""
    curves = {mode: estimate for mode, (estimate, _) in modes.items()} | {"openface": openface}
    return {name: abs(apex_frame(curve) - coded_apex) for name, curve in curves.items()}


def coded_table(coded: dict) -> str:
    lines = ["| clip | coded AU | r, sequence mode | r, per image | apex rise, sequence | "
             "apex rise, per image |", "| --- | --- | --- | --- | --- | --- |"]
    for p in coded["pairs"]:
        r_seq, r_img = (f"{p[m]['r']:.2f}" if p[m]["r"] is not None else "(OpenFace flat)"
                        for m in ("sequence", "image"))
        lines.append(f"| {p['clip']} ({p['sheet']}) | {p['au']} | {r_seq} | {r_img} | {p['sequence']['rise']:.2f} | "
                     f"{p['image']['rise']:.2f} |")
    seq, img = coded["summary"]["sequence"], coded["summary"]["image"]
    lines.append(f"| Fisher mean ({seq['pairs_with_r']} pairs) | | **{seq['fisher_r']:.3f}** | {img['fisher_r']:.3f} | "
                 f"> 0: {seq['rising']}/{seq['coded']}, >= {FACS_RISE}: {seq['rising_by_facs_rise']} | "
                 f"> 0: {img['rising']}/{img['coded']}, >= {FACS_RISE}: {img['rising_by_facs_rise']} |")
    apex = coded["summary"]["apex_error_frames"]
    if apex["sequence"] is not None:
        lines.append(f"\napex (largest summed AU change) against the coded apex, mean |error| in frames: sequence "
                     f"mode {apex['sequence']:.1f}, per image {apex['image']:.1f}, OpenFace's own curves "
                     f"{apex['openface']:.1f}")
    return "\n".join(lines)


def reference_views(clips: list[ClipData], fps: float) -> dict[str, dict]:
    """What the reference allows (openface.reference_limits), per AU and overall."""
    curves, window = [c.openface for c in clips], smoothing_frames(fps)
    return {"noise ceiling": noise_ceiling(curves),
            "OpenFace's own neighbouring frames": smooth_ceiling(curves, window),
            "OpenFace with horizontal gaze": gaze_following(curves, [c.gaze for c in clips], window)}


def agreement_table(sequence: dict, image: dict, views: dict[str, dict]) -> str:
    lines = ["| AU | clips where OpenFace moves | within-clip r, sequence mode | per-image mode | "
             + " | ".join(views) + " |", "| --- " * (4 + len(views)) + "|"]
    for au in OPENFACE_AUS:
        if au in sequence["per_au"]:
            lines.append(f"| {au} | {len(sequence['per_clip_r'][au])} | {sequence['per_au'][au]:.2f} | "
                         f"{image['per_au'][au]:.2f} | " + " | ".join(f"{v['per_au'][au]:.2f}" for v in views.values())
                         + " |")
    lines.append(f"| Fisher mean over AUs | | **{sequence['fisher_over_aus']:.3f}** | {image['fisher_over_aus']:.3f} | "
                 + " | ".join(f"{v['fisher_over_aus']:.3f}" for v in views.values()) + " |")
    lines.append(f"| mean over clips of the clip's Fisher mean (as au_r) | | {sequence['mean_over_clips']:.3f} | "
                 f"{image['mean_over_clips']:.3f} | |")
    signal = sequence["with_signal"]
    lines.append(f"| clip-AU pairs where OpenFace's curve is mostly signal (lag-1 autocorrelation >= "
                 f"{SIGNAL_AUTOCORRELATION}; {signal['pairs']} pairs), Fisher mean | | {signal['fisher_mean']:.3f} | "
                 f"{image['with_signal']['fisher_mean']:.3f} | |")
    return "\n".join(lines)


def geometry_summary(clips: list[ClipData]) -> str:
    """Mean and spread of every landmark measure over all frames (the per-image AU06/AU09 centres come from it)."""
    values = np.vstack([c.values for c in clips])
    return ", ".join(f"{n} {values[:, SOURCE_NAMES.index(n)].mean():.2f}+-{values[:, SOURCE_NAMES.index(n)].std():.2f}"
                     for n in MEASURE_NAMES)


def calibration_json(calibration: Calibration, sequence: dict, image: dict, clips: list[ClipData],
                     fps: float, reference: str = "") -> dict:
    listed = ", ".join(c.name for c in clips) if len(clips) <= 12 else f"{clips[0].name} ... {clips[-1].name}"
    return {"source": f"python -m openface.calibrate on {sum(len(c.scores) for c in clips)} frames of "
                      f"{len(clips)} clips ({listed}) at {fps:g} fps"
                      + (f", OpenFace {reference}" if reference else ""),
            "aus": {au: {"gain": float(calibration.gain[j]), "offset": float(calibration.offset[j])}
                    for j, au in enumerate(OPENFACE_AUS)},
            "sequence": calibration.sequence.to_dict(),
            "leave_one_clip_out_within_clip_r": {"sequence": sequence["per_au"], "image": image["per_au"],
                                                 "sequence_fisher_over_aus": sequence["fisher_over_aus"],
                                                 "image_fisher_over_aus": image["fisher_over_aus"],
                                                 "sequence_where_openface_has_signal": sequence["with_signal"]}}


def load_clips(p: argparse.ArgumentParser, args) -> tuple[list[ClipData], str]:
    """The calibration clips of either layout, and which kind of OpenFace output they carry."""
    cache = Path(args.cache) if args.cache else None
    if args.megc_root:
        if args.openface_csvs:
            p.error("--openface_csvs goes with --clips; an MEGC package carries its CSVs in <pair>/csvs/")
        measured, where = measured_clips(Path(args.megc_root), cache), f"--megc_root {args.megc_root}"
    else:
        if not args.openface_csvs:
            p.error("--clips needs --openface_csvs: the folder with OpenFace's output for those clips")
        measured = measured_clips(Path(args.clips), cache, lambda root: measure_tree(root, Path(args.openface_csvs)),
                                  inputs=[Path(args.clips), Path(args.openface_csvs)])
        where = f"--clips {args.clips}"
    clips = [clip_data(c) for c in measured if len(c.frames) >= 2]
    # a fit is scored leave-one-clip-out (3 clips at least); --check scores a calibration on any clip
    needed, why = (1, "--check needs 1") if args.check else (3, "leave-one-clip-out needs 3")
    if len(clips) < needed:
        p.error(f"{where}: {len(clips)} clips with 2 or more measured frames; {why}")
    return clips, PER_FRAME_KIND if args.megc_root else tree_kind(Path(args.clips), Path(args.openface_csvs))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--megc_root", help="an ULME-style MEGC package (<pair>/imgs/, <pair>/csvs/)")
    data.add_argument("--clips", help="a tree of clip folders (frames); OpenFace's output in --openface_csvs "
                                      "(openface.clip_tree)")
    p.add_argument("--openface_csvs", help="with --clips: OpenFace's CSVs at the clips' relative paths")
    p.add_argument("--cache", default=None, help=".npz of the MediaPipe measurements (written on the first run)")
    p.add_argument("--out", default=str(CALIBRATION_FILE))
    p.add_argument("--fps", type=float, default=CLIP_FPS, help="the clips' frame rate")
    p.add_argument("--codes", default=None, help="clips.csv of `python -m data.annotations` (FACS-coded AUs)")
    p.add_argument("--check", nargs="?", const=str(CALIBRATION_FILE), default=None, metavar="CALIBRATION",
                   help="fit nothing: score an existing calibration (default: the shipped one) on these clips, as a "
                        "test on data it has never seen")
    return p


def report(predictions: dict, clips: list[ClipData], fps: float, codes: str | None, heading: str) -> dict:
    """Print the agreement tables of ``predictions`` (and, with ``codes``, the FACS-coded view); return them."""
    sequence, image = agreement(predictions, "sequence"), agreement(predictions, "image")
    views = reference_views(clips, fps)
    print(heading)
    print(agreement_table(sequence, image, views))
    out = {"sequence": sequence, "image": image,
           "reference": {name: v["fisher_over_aus"] for name, v in views.items()}}
    if codes:
        coded = coded_agreement(predictions, clips, read_codes(Path(codes)))
        print(coded_table(coded))
        out["facs_coded"] = coded["summary"]
    return out


def main(argv: list[str] | None = None) -> dict:
    p = build_parser()
    args = p.parse_args(argv)
    if args.fps <= 0 or not np.isfinite(args.fps):
        p.error(f"--fps {args.fps:g}: give the clips' frame rate ({fps_summary()})")
    checked = Calibration.load(Path(args.check)) if args.check else None  # a bad file fails before any measuring
    clips, reference = load_clips(p, args)
    if checked is not None:  # --check: score, write nothing
        shown = report(with_calibration(clips, checked, args.fps), clips, args.fps, args.codes,
                       f"{args.check} ({checked.source}) on {len(clips)} clips, not refitted:")
        return {"checked": args.check, "sequence_fisher_over_aus": shown["sequence"]["fisher_over_aus"],
                "image_fisher_over_aus": shown["image"]["fisher_over_aus"], **shown}
    shown = report(leave_one_clip_out(clips, args.fps), clips, args.fps, args.codes,
                   f"{len(clips)} clips, each predicted by a calibration fitted on the others (leave-one-clip-out):")
    fitted = fit_calibration(clips, args.fps)
    out = calibration_json(fitted, shown["sequence"], shown["image"], clips, args.fps, reference)
    out["leave_one_clip_out_within_clip_r"]["reference"] = shown["reference"]
    if "facs_coded" in shown:
        out["leave_one_clip_out_within_clip_r"]["facs_coded"] = shown["facs_coded"]
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"landmark measures (canonical 128 px): {geometry_summary(clips)}")
    print(f"wrote {args.out} ({out['source']})")
    return out


def cli(argv: list[str] | None = None) -> int:
    """The command: 0 when the calibration is written, 2 with a one-line error for unusable input."""
    try:
        main(argv)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
