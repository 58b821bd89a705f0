"""Test-time AU trajectories: a driving clip's per-frame AUs (T, n) -> the per-frame target AUs of the generator.

Pure numpy functions on the raw OpenFace scale (0..5). None of them mutates its inputs; each returns a new float64
array. They implement the ULME-GAN test-time options (seed-systems.md, section 3):

- ``--re_code``        -> :func:`presence_majority_mask` + :func:`re_encode`
- apex detection       -> :func:`find_apex`
- ``--linear_fitting`` -> :func:`linear_fit`
- ``--apex_frame``     -> :func:`apex_triangle`
- ``--factor``         -> :func:`magnify`
- ``--au_mode relative`` -> :func:`relative_to_onset`
- optional denoising   -> :func:`smooth_curves` (not in the seed)

:func:`build_trajectory` chains them in one documented order.
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np

from catalog.au_schema import OPENFACE_AUS, OPENFACE_PRESENCE

TRAJECTORY_MODES = ("1v1", "linear_fitting", "apex_frame")
AU_MODES = ("absolute", "relative")

# Raw OpenFace intensity ceiling; the networks see aus / 5, so targets above it are extrapolation.
MAX_INTENSITY = 5.0

# ULME keeps an AU when its presence flag is on in at least half of the clip's frames (a tie keeps it).
PRESENCE_MAJORITY = 0.5


# ---------------------------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------------------------

def _as_clip(aus, name: str = "aus") -> np.ndarray:
    """A fresh float64 (T, n) copy with T >= 1, n >= 1 and only finite values."""
    arr = np.array(aus, dtype=np.float64, copy=True)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a (T, n) array of per-frame AUs, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: the clip has no frames (T == 0)")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: the AU vectors are empty (n == 0)")
    if not np.all(np.isfinite(arr)):
        bad = sorted({int(t) for t in np.argwhere(~np.isfinite(arr))[:, 0]})
        raise ValueError(f"{name}: NaN or inf in frame(s) {bad[:10]}")
    return arr


def _as_vector(vec, n: int, name: str) -> np.ndarray:
    """A fresh float64 (n,) copy with only finite values."""
    arr = np.array(vec, dtype=np.float64, copy=True)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected an AU vector of shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: NaN or inf in {arr.tolist()}")
    return arr


def _check_frame_index(index, n_frames: int, name: str) -> int:
    """A frame index in [0, n_frames - 1]; negative (Python-style) indices are refused to avoid silent surprises."""
    if isinstance(index, bool) or not isinstance(index, Integral):
        raise ValueError(f"{name} must be an integer frame index, got {index!r}")
    index = int(index)
    if not 0 <= index < n_frames:
        raise ValueError(f"{name}={index} is out of range for a clip of {n_frames} frame(s) (0..{n_frames - 1})")
    return index


def _piecewise_linear(knot_frames: Sequence[int], knot_values: Sequence[np.ndarray], n_frames: int) -> np.ndarray:
    """(n_frames, n) curve through (frame, AU vector) knots, straight lines in between.

    Knots must be strictly increasing and start at frame 0 and end at frame n_frames - 1, so every frame lies on
    exactly one segment and no segment has zero length (no division by zero).
    """
    out = np.empty((n_frames, len(knot_values[0])), dtype=np.float64)
    out[knot_frames[0]] = knot_values[0]
    for (f0, v0), (f1, v1) in zip(zip(knot_frames, knot_values), zip(knot_frames[1:], knot_values[1:])):
        # Weight of the segment's end knot for frames f0..f1 (0 at f0, 1 at f1): exact values at the knots.
        weight = (np.arange(f0, f1 + 1, dtype=np.float64) - f0) / (f1 - f0)
        out[f0:f1 + 1] = (1.0 - weight)[:, None] * v0 + weight[:, None] * v1
    return out


# ---------------------------------------------------------------------------------------------------------------
# AU re-encoding (--re_code)
# ---------------------------------------------------------------------------------------------------------------

def presence_majority_mask(presence, presence_names: Sequence[str] = OPENFACE_PRESENCE,
                           au_names: Sequence[str] = OPENFACE_AUS) -> np.ndarray:
    """(n,) bool: for each AU of ``au_names``, whether its presence flag is on in at least half of the frames.

    ``presence`` is (T, len(presence_names)), e.g. OpenFace's ``_c`` columns (0/1), which include AU28 (no
    intensity) before AU45: columns are matched by name, never by position.

    Tie rule: an AU is kept when ``mean(flag) >= 0.5`` (present in exactly half of the frames -> kept); it is
    zeroed only when present in *fewer* than half. This is ULME-GAN's rule (it zeroes an AU when the mean flag
    is ``< 0.5``). On the 12 shipped MEGC2021 folders no AU sits exactly at 0.5 (the closest fractions are 0.462
    and 0.659), so the shipped pickles are reproduced by either tie rule; the tie case follows the seed.
    The comparison is done as ``2 * sum >= T`` so that 0/1 flags never meet a rounding error.

    AUs without a presence column (N2ME's landmark-based "AU27*") cannot be judged and are kept.
    """
    flags = np.array(presence, dtype=np.float64, copy=True)
    presence_names = list(presence_names)
    if flags.ndim != 2 or flags.shape[1] != len(presence_names):
        raise ValueError(f"presence: expected shape (T, {len(presence_names)}) to match presence_names, "
                         f"got {flags.shape}")
    if flags.shape[0] == 0:
        raise ValueError("presence: the clip has no frames (T == 0)")
    if not np.all(np.isfinite(flags)):
        raise ValueError("presence: NaN or inf in the presence flags")
    if np.any((flags < 0) | (flags > 1)):
        raise ValueError("presence: flags must lie in [0, 1] (OpenFace writes 0.0 or 1.0)")
    if len(set(presence_names)) != len(presence_names):
        raise ValueError(f"presence_names has duplicates: {presence_names}")

    n_frames = flags.shape[0]
    column = {name: j for j, name in enumerate(presence_names)}
    keep = np.ones(len(au_names), dtype=bool)
    for i, name in enumerate(au_names):
        if name in column:
            keep[i] = 2.0 * flags[:, column[name]].sum() >= 2.0 * PRESENCE_MAJORITY * n_frames
    return keep


def re_encode(aus, mask) -> np.ndarray:
    """(T, n): the AUs outside ``mask`` (n,) bool set to 0 in every frame, the others unchanged."""
    clip = _as_clip(aus)
    keep = np.asarray(mask)
    if keep.shape != (clip.shape[1],):
        raise ValueError(f"mask: expected shape ({clip.shape[1]},) to match the AUs, got {keep.shape}")
    if keep.dtype != bool:
        raise ValueError(f"mask: expected a boolean array, got dtype {keep.dtype}")
    return np.where(keep[None, :], clip, 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Apex and temporal profiles
# ---------------------------------------------------------------------------------------------------------------

def find_apex(aus) -> int:
    """Index of the frame with the largest sum of AU intensities; the first such frame on ties."""
    return int(np.argmax(_as_clip(aus).sum(axis=1)))  # argmax returns the first maximum


def linear_fit(aus, apex: int | None = None) -> np.ndarray:
    """(T, n) piecewise-linear profile onset (frame 0) -> apex -> offset (frame T-1), per AU.

    Each AU is interpolated linearly between its values at the three frames; those frames keep their values
    exactly. ``apex`` defaults to :func:`find_apex`. Degenerate cases (the seed collapses them or mis-indexes):

    - apex == 0 or apex == T-1: the apex coincides with an end, so the profile is one straight line from
      frame 0 to frame T-1 (the apex value is one of its ends);
    - T == 2: both frames unchanged; T == 1: the single frame unchanged.
    """
    clip = _as_clip(aus)
    n_frames = clip.shape[0]
    apex = find_apex(clip) if apex is None else _check_frame_index(apex, n_frames, "apex")
    knots = sorted({0, apex, n_frames - 1})  # dedupe: apex at an end drops the zero-length segment
    return _piecewise_linear(knots, [clip[f] for f in knots], n_frames)


def apex_triangle(template_aus, apex_aus, n_frames: int, apex: int) -> np.ndarray:
    """(T, n) triangle template -> apex AUs (at frame ``apex``) -> template, linear ramps (``--apex_frame``).

    Frames 0 and T-1 hold the template's AUs unless the apex is there: apex == 0 gives a single ramp down
    apex -> template, apex == T-1 a single ramp up template -> apex (no division by zero). T == 1 returns the
    apex AUs alone.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, Integral) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    n_frames = int(n_frames)
    peak = np.array(apex_aus, dtype=np.float64, copy=True)
    if peak.ndim != 1 or peak.size == 0:
        raise ValueError(f"apex_aus: expected an AU vector of shape (n,), got {peak.shape}")
    peak = _as_vector(peak, peak.size, "apex_aus")
    base = _as_vector(template_aus, peak.size, "template_aus")
    apex = _check_frame_index(apex, n_frames, "apex")

    frames, values = [apex], [peak]
    if apex > 0:
        frames.insert(0, 0)
        values.insert(0, base)
    if apex < n_frames - 1:
        frames.append(n_frames - 1)
        values.append(base)
    return _piecewise_linear(frames, values, n_frames)


# ---------------------------------------------------------------------------------------------------------------
# Conditioning, magnification, smoothing
# ---------------------------------------------------------------------------------------------------------------

def magnify(aus, factor: float, max_intensity: float = MAX_INTENSITY) -> np.ndarray:
    """(T, n): ``aus * factor`` clipped to [0, max_intensity] (the seeds' ``--factor``).

    Why clip: the generator was trained on OpenFace's 0..5 range (normalised to [0, 1]); a magnified target
    beyond 5 asks for an extrapolation it never saw, and negative intensities mean nothing. The clip also
    applies with factor == 1, so it removes small negative OpenFace values as well.
    """
    clip = _as_clip(aus)
    factor = float(factor)
    if not np.isfinite(factor) or factor < 0:
        raise ValueError(f"factor must be a finite number >= 0, got {factor}")
    if not np.isfinite(max_intensity) or max_intensity <= 0:
        raise ValueError(f"max_intensity must be a positive number, got {max_intensity}")
    return np.clip(clip * factor, 0.0, float(max_intensity))


def relative_to_onset(aus, template_aus, onset: int = 0) -> np.ndarray:
    """(T, n) ``--au_mode relative``: template + (frame - onset frame), clipped at 0 from below.

    Only the clip's *motion* is transferred: the driving subject's resting AUs (identity-specific offsets, e.g. a
    habitual brow lowerer) cancel out instead of leaking into the template face. The onset frame itself maps to
    the template's AUs. No upper clip here: :func:`magnify` applies it.
    """
    clip = _as_clip(aus)
    base = _as_vector(template_aus, clip.shape[1], "template_aus")
    onset = _check_frame_index(onset, clip.shape[0], "onset")
    return np.maximum(base[None, :] + (clip - clip[onset][None, :]), 0.0)


def smooth_curves(aus, window: int) -> np.ndarray:
    """(T, n) centred moving average over ``window`` frames (odd); ``window <= 1`` returns an unchanged copy.

    Edges: the window is truncated to the frames that exist (frame 0 averages frames 0..window//2), so T frames
    come out, a constant curve stays constant and the ends are not pulled towards zero as zero padding would.
    Note that averaging lowers a sharp apex; ME clips are short, keep the window small (3 or 5).
    """
    if isinstance(window, bool) or not isinstance(window, Integral):
        raise ValueError(f"window must be an integer number of frames, got {window!r}")
    clip = _as_clip(aus)
    window = int(window)
    if window <= 1:
        return clip
    if window % 2 == 0:
        raise ValueError(f"window must be odd so that the average is centred on the frame, got {window}")
    half = window // 2
    n_frames = clip.shape[0]
    # Prefix sums give every window's total in O(T): total(lo..hi-1) = csum[hi] - csum[lo].
    csum = np.concatenate([np.zeros((1, clip.shape[1])), np.cumsum(clip, axis=0)])
    frames = np.arange(n_frames)
    lo = np.maximum(frames - half, 0)
    hi = np.minimum(frames + half + 1, n_frames)
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


# ---------------------------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------------------------

def build_trajectory(clip_aus, *, template_aus=None, mode: str = "1v1", re_code_mask=None, apex: int | None = None,
                     au_mode: str = "absolute", factor: float = 1.0, smooth_window: int = 0,
                     max_intensity: float = MAX_INTENSITY) -> tuple[np.ndarray, int]:
    """Per-frame target AUs (T, n) for the generator and the apex frame index used.

    Steps, in this order, and why:

    1. ``re_code_mask`` (n,) bool, if given: :func:`re_encode` the clip. It comes first, as in ULME, so that
       AUs judged absent neither drive frames nor count towards the apex. The template's AUs are never masked.
    2. ``smooth_window`` > 1: :func:`smooth_curves` the re-encoded curves (zeroed AUs stay zero), before the apex is
       looked for so that a one-frame OpenFace spike cannot become the apex.
    3. Apex: ``apex`` if given, else :func:`find_apex` on the clip from step 2 (ULME: largest sum of re-encoded
       intensities). It is a property of the driving clip, so it is found before relative conditioning, whose
       clip at 0 could otherwise shift it.
    4. ``au_mode == "relative"``: :func:`relative_to_onset` with frame 0 as onset; ``"absolute"`` keeps the clip.
    5. ``mode``: ``"1v1"`` each frame drives one output; ``"linear_fitting"`` :func:`linear_fit` through onset,
       apex and offset; ``"apex_frame"`` :func:`apex_triangle` template -> (step-4 AUs of the apex frame) ->
       template. Both shapes work on step-4 AUs, so they share the generator's (absolute) conditioning.
    6. :func:`magnify` by ``factor`` and clip to [0, max_intensity], always last so the magnification acts on the
       final targets (like the seed's ``--factor``, it scales the whole vector, template baseline included) and
       the output is always a valid 0..5 intensity range, even with factor 1.

    ``template_aus`` (n,) is required for ``au_mode="relative"`` and ``mode="apex_frame"``; unused otherwise.
    With defaults (no mask, no smoothing, absolute, factor 1) the targets are the clip's AUs clipped to [0, 5].
    """
    if mode not in TRAJECTORY_MODES:
        raise ValueError(f"mode must be one of {TRAJECTORY_MODES}, got {mode!r}")
    if au_mode not in AU_MODES:
        raise ValueError(f"au_mode must be one of {AU_MODES}, got {au_mode!r}")
    clip = _as_clip(clip_aus, "clip_aus")
    n_frames, n_aus = clip.shape
    needs_template = au_mode == "relative" or mode == "apex_frame"
    if template_aus is None and needs_template:
        raise ValueError(f"template_aus is required for au_mode={au_mode!r}, mode={mode!r}")
    template = None if template_aus is None else _as_vector(template_aus, n_aus, "template_aus")

    if re_code_mask is not None:
        clip = re_encode(clip, re_code_mask)
    clip = smooth_curves(clip, smooth_window)
    apex = find_apex(clip) if apex is None else _check_frame_index(apex, n_frames, "apex")
    if au_mode == "relative":
        clip = relative_to_onset(clip, template, onset=0)

    if mode == "linear_fitting":
        clip = linear_fit(clip, apex)
    elif mode == "apex_frame":
        clip = apex_triangle(template, clip[apex], n_frames, apex)
    return magnify(clip, factor, max_intensity), apex
