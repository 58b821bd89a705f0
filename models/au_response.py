"""AU-response calibration: drive the generator so that the face shows the AU asked for.

A generator trained briefly under-responds: asked for AU12 = 3 it may paint a smile the AU estimator reads as 1.
Once per model, ``python -m tools.calibrate_response`` sweeps every AU over 0..5 on held-out faces, re-measures each
generated face with the built-in estimator (``tools.au_grid --measure``) and stores the mean response curve of
each AU beside the checkpoint (``<model>.calibration.json``). Test mode then inverts the curves: the driven level
of each AU is the one whose measured response moves by as much as the target asks.

    python -m tools.calibrate_response --ckpt pretrained/ganimation128_gpu15.pth --faces FACES
    (the bundled model's FACES: pretrained/calibration_faces.txt)

Inversion is anchored on the template: the template driven with its own AUs shows ``m(anchor)`` (m = the
response curve); a target ``t`` asks for ``m(anchor) + (t - anchor)``, so frame 0 of a relative trajectory (t =
anchor) is driven exactly as before, and only the motion is rescaled. AUs whose response is not monotone enough to
invert (Pearson r below ``MIN_R`` or a span below ``MIN_SPAN``) are passed through unchanged. ``--no_calibration``
in test mode switches it off (the seeds have no calibration: ULME-GAN's behaviour).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUFFIX = ".calibration.json"
MIN_R = 0.3  # r over every face and level: below it the AU barely follows the driven level (AU01: 0.36, kept)
MIN_SPAN = 0.3  # raw AU units between the lowest and highest response: a flat curve cannot be inverted
MAX_LEVEL = 5.0


def path_for(checkpoint: Path) -> Path:
    return Path(checkpoint).with_suffix(SUFFIX)


@dataclass
class AUCurve:
    """Mean re-measured intensity of one AU (``response``) at each driven level (``levels``), made monotone."""

    levels: np.ndarray
    response: np.ndarray

    @classmethod
    def fitted(cls, levels, measured) -> AUCurve:
        # A running maximum makes the curve invertible; a tiny ramp breaks ties so that np.interp is well defined.
        lv = np.asarray(levels, dtype=float)
        mono = np.maximum.accumulate(np.asarray(measured, dtype=float)) + 1e-6 * np.arange(len(lv))
        return cls(lv, mono)

    def measured_at(self, level: np.ndarray) -> np.ndarray:
        return np.interp(level, self.levels, self.response)

    def level_for(self, shown: np.ndarray) -> np.ndarray:
        return np.interp(shown, self.response, self.levels)


class ResponseCurves:
    """Per-AU response curves of one generator, by column of its AU schema."""

    def __init__(self, curves: dict[int, AUCurve], source: Path | None = None):
        self.curves, self.source = curves, source

    def drive(self, targets: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """(T, n) target AUs (what the face should show) -> (T, n) generator input, clipped to [0, 5]."""
        out = np.array(targets, dtype=float, copy=True)
        anchor = np.asarray(anchor, dtype=float)
        for j, curve in self.curves.items():
            wanted = curve.measured_at(anchor[j]) + (out[:, j] - anchor[j])
            out[:, j] = curve.level_for(wanted)
        return np.clip(out, 0.0, MAX_LEVEL)


def curves_from_grid(record: dict, names: tuple[str, ...]) -> tuple[dict[int, AUCurve], dict[str, str]]:
    """``tools.au_grid --measure`` record -> invertible curves, and why each other AU was left out."""
    curves, skipped = {}, {}
    levels = record["levels"]
    for au, info in record["remeasured"].items():
        means, r = info["mean_by_level"], info["pearson_r_level_vs_measured"]
        if au not in names or any(m is None for m in means) or r is None:
            skipped[au] = "not measured at every level"
            continue
        curve = AUCurve.fitted(levels, means)
        span = float(curve.response[-1] - curve.response[0])
        if r < MIN_R or span < MIN_SPAN:
            skipped[au] = f"r {r:.2f}, span {span:.2f}: too flat to invert"
            continue
        curves[names.index(au)] = curve
    return curves, skipped


def load_response(checkpoint: Path, names: tuple[str, ...]) -> ResponseCurves | None:
    """The curves stored beside ``checkpoint``; None when it has none (a seed's model, a fresh run)."""
    path = path_for(checkpoint)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    curves = {names.index(au): AUCurve.fitted(c["levels"], c["response"]) for au, c in record["curves"].items()
              if au in names}
    return ResponseCurves(curves, path)


def save_response(record: dict, names: tuple[str, ...], checkpoint: Path, command: str) -> Path:
    curves, skipped = curves_from_grid(record, names)
    doc = {"checkpoint": Path(checkpoint).name, "command": command, "faces": record["faces"],
           "estimator": "built-in (MediaPipe landmarks -> openface/ AU estimator), faces enlarged to 256 px",
           "rule": f"invert where Pearson r >= {MIN_R} and span >= {MIN_SPAN}",
           "curves": {names[j]: {"levels": c.levels.tolist(), "response": np.round(c.response, 4).tolist()}
                      for j, c in sorted(curves.items())},
           "left_out": skipped,
           "raw": {au: record["remeasured"][au] for au in record["remeasured"]}}
    out = path_for(checkpoint)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out


def plot_curves(calibration_json: Path, out: Path) -> None:
    """Every swept AU's mean re-measured response against the driven level; calibrated AUs solid, others dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(Path(calibration_json).read_text())
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
    levels = None
    for au, info in doc["raw"].items():
        means = info["mean_by_level"]
        levels = levels or list(range(len(means)))
        kept = au in doc["curves"]
        ax.plot(levels, means, "-o" if kept else ":", ms=3, lw=1.6 if kept else 0.8, label=au if kept else None)
    ax.plot([0, 5], [0, 5], "k--", lw=0.8, label="shown = driven")
    ax.set(xlabel="driven level (raw 0..5)", ylabel="re-measured on the generated face",
           title=f"{doc['checkpoint']}: AU response ({len(doc['faces'])} held-out faces)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
