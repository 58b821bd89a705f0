"""The metric registry: every metric by name, with its direction, range, ideal value and a one-line description.

A plain dict (``METRICS``) so that the evaluator, the CSV writer, the HTML report and the README all read the same
definitions. Each entry points at the pure function in ``metrics/`` that computes it from arrays; the evaluator
(``metrics/evaluate.py``) only prepares those arrays (frames, AU curves, flows) and calls the functions.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from metrics import au, fidelity, frechet, identity, motion, quality, texture


@dataclass(frozen=True)
class Metric:
    name: str
    group: str  # "AU fidelity" | "identity" | "motion" | "image quality" | "efficiency"
    direction: str  # "higher" | "lower" | "info" (not a score)
    value_range: str  # human-readable, e.g. "-1..1"
    ideal: float | None  # the value a perfect result gets (None: no fixed ideal)
    needs: str  # which inputs must be present, else the value is null
    doc: str  # one line, README-ready
    fn: Callable | None = None  # the pure function computing it (None: carried from run.json)
    controlled: bool = False  # also scored against another clip's source: the wrong-clip control ``<name>_control``

    def markdown_row(self) -> str:
        """One README table row (the docs avoid '|', which would split the cell)."""
        arrow = {"higher": "higher is better", "lower": "lower is better", "info": "information"}[self.direction]
        return f"| `{self.name}` | {self.group} | {self.doc} | {arrow} | {self.value_range} | {self.needs} |"


_ENTRIES = (
    Metric("au_r", "AU fidelity", "higher", "-1..1", 1.0, "source",
           "Pearson r between the source's and the result's re-measured AU curves, per AU that moves in the source, "
           "averaged through Fisher z", au.au_correlation, controlled=True),
    Metric("au_mae", "AU fidelity", "lower", "0..5", 0.0, "aus_driven.csv",
           "mean absolute difference between the AUs re-measured on the result and the driving AUs (every AU, frame)",
           au.au_mae),
    Metric("apex_error_frames", "AU fidelity", "lower", "0..clip length", 0.0, "source or run.json apex",
           "distance between the result's apex and the source's, in source frames (apex: the largest AU change "
           "from the first frame)",
           au.apex_error_frames, controlled=True),
    Metric("apex_error_ms", "AU fidelity", "lower", "0..clip duration", 0.0, "source or run.json apex",
           "the apex error in milliseconds at the clip's frame rate", au.apex_error_ms,
           controlled=True),
    Metric("facs_recall", "AU fidelity", "higher", "0..1", 1.0, "--annotations",
           "share of the dataset's FACS-coded AUs (those the estimator measures) that rise by >= 0.25 in the result",
           au.facs_recall),
    Metric("facs_recall_source", "AU fidelity", "higher", "0..1", 1.0, "--annotations and source",
           "the same on the real source clip: the most the AU estimator can confirm", au.facs_recall),
    Metric("identity_distance", "identity", "lower", "0..2", 0.0, "template",
           "mean Euclidean distance of dlib's 128-d face descriptor between the template and each described result "
           f"frame (every 6th face frame by default, --identity_every; same person below "
           f"{identity.SAME_PERSON_THRESHOLD})", identity.mean_distance),
    Metric("identity_same_rate", "identity", "higher", "0..1", 1.0, "template",
           f"share of described result frames within dlib's same-person threshold {identity.SAME_PERSON_THRESHOLD} "
           "of the template", identity.same_person_rate),
    Metric("onset_fidelity", "identity", "higher", "-1..1", 1.0, "template",
           "SSIM of the result's onset frame against the template inside the expression regions: low when the "
           "first frame already carries the driving person's wrinkles (identity leak)", fidelity.onset_fidelity),
    Metric("flow_r", "motion", "higher", "-1..1", 1.0, "source",
           "Pearson r of the per-region (brows, eyes, nose, mouth) optical-flow magnitude profiles onset -> each "
           "frame, source vs result, averaged through Fisher z", motion.profile_correlation, controlled=True),
    Metric("strain_r", "motion", "higher", "-1..1", 1.0, "source",
           "the same for the optical-strain magnitude profiles", motion.profile_correlation, controlled=True),
    Metric("flow_amplitude_error", "motion", "lower", "0..inf", 0.0, "source",
           "mean over regions of abs(ln(result peak flow / source peak flow)): 0 = the same amount of motion, "
           "0.69 = twice or half", motion.amplitude_log_ratio, controlled=True),
    Metric("texture_r", "motion", "higher", "-1..1", 1.0, "source",
           "Pearson r of the per-region (forehead, eyes, nasolabial, mouth) change of fine-detail energy "
           "(difference of Gaussians) from onset to each frame beyond the onset warped by the frame's optical flow, "
           "source vs result, averaged through Fisher z: furrows and creases, which a pure warp does not make",
           texture.texture_correlation, controlled=True),
    Metric("ssim_static", "image quality", "higher", "-1..1", 1.0, "template",
           "mean SSIM (grey, Gaussian 11x11, sigma 1.5) of each result frame against the template outside the "
           "expression regions", quality.mean_masked_ssim),
    Metric("psnr_static", "image quality", "higher", f"0..{quality.PSNR_CAP:g} dB", quality.PSNR_CAP, "template",
           f"mean PSNR against the template outside the expression regions (identical = {quality.PSNR_CAP:g})",
           quality.mean_masked_psnr),
    Metric("artifact_rate", "image quality", "lower", "0..1", 0.0, "template",
           f"share of expression-region pixels, mean over frames, more than {fidelity.ARTIFACT_LEVELS:g} grey levels "
           f"outside the template's own range within {fidelity.NEIGHBOURHOOD} px (painted streaks, blotches)",
           fidelity.artifact_rate),
    Metric("flicker", "image quality", "lower", "0..255", 0.0, "none (source refines it)",
           "mean frame-to-frame grey-level change outside the expression regions beyond the source's own change "
           "at the same time, clipped at 0 (grey levels per frame)", quality.flicker),
    Metric("fd_dlib128", "image quality", "lower", "0..inf", 0.0, "source",
           "Frechet distance between the dlib-128 descriptors of the described real source frames and result frames "
           "(not Inception FID)", frechet.frechet_distance),
    Metric("fid_inception", "image quality", "lower", "0..inf", 0.0, "source and --inception weights",
           "Frechet distance between the Inception-v3 pool features (2048-d, NVIDIA's TorchScript "
           "inception-2015-12-05.pt) of the full real source frames and result frames; with a clip's few frames it "
           "is biased upwards, so compare on the same pairs, not with published 50k-image FIDs",
           frechet.frechet_distance),
    Metric("frames_per_s", "efficiency", "higher", "0..inf", None, "run.json",
           "generation speed recorded by the run (frames per second)"),
    Metric("device", "efficiency", "info", "text", None, "run.json", "where the run generated (cpu, cuda:0 ...)"),
)

CONTROL_SUFFIX = "_control"
CONTROL_GROUP = "wrong-clip control"


def control_name(name: str) -> str:
    """The column of ``name``'s wrong-clip control."""
    return name + CONTROL_SUFFIX


def _control_entry(m: Metric) -> Metric:
    """The same metric with another clip as the source: a metric that tells right motion from wrong scores
    clearly worse here than on the right clip."""
    return Metric(control_name(m.name), CONTROL_GROUP, m.direction, m.value_range, None,
                  "a second distinct source clip",
                  f"{m.name} of the same result scored against another clip's source (the next distinct clip in "
                  "sorted order): how the metric scores wrong motion", m.fn)


# each control column right after its metric, so tables and CSV rows show them side by side
_WITH_CONTROLS = tuple(e for m in _ENTRIES for e in ((m, _control_entry(m)) if m.controlled else (m,)))
METRICS: dict[str, Metric] = {m.name: m for m in _WITH_CONTROLS}
NUMERIC = tuple(m.name for m in _WITH_CONTROLS if m.direction != "info")
CONTROLLED = tuple(m.name for m in _ENTRIES if m.controlled)


def markdown_table() -> str:
    """The README table: one line per metric."""
    head = "| metric | group | what | direction | range | needs |\n| --- | --- | --- | --- | --- | --- |"
    return "\n".join([head, *(m.markdown_row() for m in METRICS.values())])


def is_better(name: str, a: float, b: float) -> bool:
    """Whether value ``a`` is better than ``b`` for metric ``name`` (used by tests and the report's colouring)."""
    direction = METRICS[name].direction
    if direction == "higher":
        return a > b
    if direction == "lower":
        return a < b
    raise ValueError(f"{name} is not a score")
