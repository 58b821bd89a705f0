"""Fit the built-in AU estimator's calibration against real OpenFace output, and report the agreement.

    python -m openface.calibrate --megc_root ../shared/data/megc2021 [--out openface/au_calibration.json]

Data: every frame and template of an ULME-style MEGC package, whose ``csvs/`` and ``csvs2/`` hold OpenFace 2
FaceLandmarkImg results (each clip counted once, though it appears with two templates). Per AU a line
``OpenFace = gain * score + offset`` (gain >= 0) is fitted by least squares.

Agreement is reported as Pearson r between the estimator's score and OpenFace, pooled over all frames and within
each clip (the motion a micro-expression makes). A positive-gain linear calibration does not change r, so r is not
inflated by the fit; the mean absolute error is reported with leave-one-clip-out fits (each clip's frames predicted
by a calibration that never saw them).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from media.images import list_images, load_rgb
from openface.au_estimator import CALIBRATION_FILE, au_features
from openface.au_schema import OPENFACE_AUS
from openface.csv_io import read_openface_csv
from openface.landmarks import Landmarker


def collect(megc_root: Path, landmarker: Landmarker):
    """(scores (N,17), OpenFace intensities (N,17), group name per row); each clip and template once."""
    scores, targets, groups, seen = [], [], [], set()
    for folder in sorted(p for p in megc_root.iterdir() if (p / "imgs").is_dir()):
        clip = "_".join(folder.name.split("_")[:2])
        items = []
        if clip not in seen:
            seen.add(clip)
            frames = list_images(folder / "imgs").items()
            items += [(path, folder / "csvs" / f"{name}.csv", clip) for name, path in frames]
        for name, path in list_images(folder / "imgs2").items():
            if name not in seen:
                seen.add(name)
                items.append((path, folder / "csvs2" / f"{name}.csv", f"template:{name}"))
        for image, csv_path, group in items:
            faces = landmarker.detect(load_rgb(image))
            rows = read_openface_csv(csv_path)
            if not faces or np.all(np.isnan(rows.intensity)):
                continue
            scores.append(au_features(faces[0]))
            targets.append(rows.intensity[int(np.nanargmax(rows.confidence))])
            groups.append(group)
    return np.array(scores), np.array(targets), np.array(groups)


# Where the data cannot calibrate an AU (no variation, or OpenFace and the score disagree in sign), the score in
# 0..1 is mapped linearly onto 0..5: a constant would erase the AU, a negative gain would invert it.
PRIOR = (5.0, 0.0)
# The MEGC frames are micro-expressions: blendshape scores there span a few hundredths, and an unbounded fit
# gives gains near 100 that saturate every ordinary expression at 5. Gains are capped so that a score of 0.5
# (a clear macro-expression) reaches full intensity.
MAX_GAIN = 10.0


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.std() < 1e-9 or y.std() < 1e-9:
        return PRIOR
    gain, offset = np.polyfit(x, y, 1)
    if gain <= 0:
        return PRIOR
    if gain > MAX_GAIN:  # keep the line through the data's mean point, with the capped slope
        gain, offset = MAX_GAIN, float(y.mean() - MAX_GAIN * x.mean())
    return float(gain), float(offset)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def agreement(scores, targets, groups) -> dict:
    clips = sorted(g for g in set(groups) if not g.startswith("template:"))
    report = {}
    for j, au in enumerate(OPENFACE_AUS):
        within = [pearson(scores[groups == c, j], targets[groups == c, j]) for c in clips]
        loco = np.zeros(len(scores))
        for group in set(groups):
            held = groups == group
            gain, offset = fit_line(scores[~held, j], targets[~held, j])
            loco[held] = np.clip(gain * scores[held, j] + offset, 0, 5)
        report[au] = {"pooled_r": pearson(scores[:, j], targets[:, j]),
                      "within_clip_r": float(np.nanmean(within)) if not np.all(np.isnan(within)) else float("nan"),
                      "clips_with_motion": int(np.sum(~np.isnan(within))),
                      "mae_loco": float(np.abs(loco - targets[:, j]).mean()),
                      "openface_mean": float(targets[:, j].mean())}
    return report


def markdown_table(report: dict) -> str:
    lines = ["| AU | pooled r | within-clip r (clips) | MAE (leave-one-clip-out) | OpenFace mean |",
             "| --- | --- | --- | --- | --- |"]
    for au, r in report.items():
        lines.append(f"| {au} | {r['pooled_r']:.2f} | {r['within_clip_r']:.2f} ({r['clips_with_motion']}) | "
                     f"{r['mae_loco']:.2f} | {r['openface_mean']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--megc_root", required=True)
    p.add_argument("--out", default=str(CALIBRATION_FILE))
    args = p.parse_args(argv)
    with Landmarker() as landmarker:
        scores, targets, groups = collect(Path(args.megc_root), landmarker)
    calibration = {au: dict(zip(("gain", "offset"), fit_line(scores[:, j], targets[:, j])))
                   for j, au in enumerate(OPENFACE_AUS)}
    report = agreement(scores, targets, groups)
    out = {"source": f"python -m openface.calibrate on {len(scores)} frames ({len(set(groups))} clips/templates)",
           "aus": {au: {**calibration[au], **{k: round(v, 4) for k, v in report[au].items()}} for au in OPENFACE_AUS}}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(markdown_table(report))
    print(f"wrote {args.out} ({len(scores)} frames)")
    return out


if __name__ == "__main__":
    main()
