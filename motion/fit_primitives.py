"""Fit the per-AU motion primitives (motion/au_primitives.npz) from real faces, and check them on held-out people.

    python -m motion.fit_primitives --london ../shared/data/london --megc_root ../shared/data/megc2021 \\
        --cache results/primitive_faces.npz            # refit: writes motion/au_primitives.npz (+ .json)
    python -m motion.fit_primitives --london ../shared/data/london --check   # held-out smile check, writes nothing

Data (docs/motion.md, "AU-matrix path: motion primitives"):
- FACS: a prior pattern per AU built on the mesh regions (``facs_priors``); ridge regression pulls every AU's
  pattern towards its prior, so AUs the data does not move keep the FACS pattern.
- London set (fitted): per person, neutral -> smiling landmark displacement (head pose removed by a 3-D similarity
  fit on points expressions do not move, in the neutral face's canonical units) against the change of the built-in
  AU estimator's per-image intensities. Every 4th person (sorted ids) is held out of the fit for the check.
- MEGC2021 package (checked, not fitted): the 6 distinct clips, per frame displacement from the onset frame against
  the change of OpenFace's intensities (the CSVs shipped with the clips) and of the estimator's sequence mode.
  Fitted on them (a throw-away leave-one-clip-out experiment, at weights up to 5 per frame), the patterns predicted
  the left-out clip no better (mean correlation 0.51 -> 0.53); and these 12 pairs are where the toolkit scores the
  AU-matrix path, so they stay out of the fit.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from catalog.datasets import DATASETS
from motion.canonical import STABLE_POINTS, canonical_frame, remove_head_motion
from motion.retarget import retarget

HOLDOUT_EVERY = 4  # every 4th London person (sorted ids, positions 3, 7, ...) is held out of the fit
CLIP_FPS = float(DATASETS["casme2"].fps)  # the MEGC2021 clips: CASME II and SAMM, one rate


@dataclass
class PhotoPairs:
    """London: per person the neutral and the smiling face: landmarks (P, 2, 478, 3) px, per-image AUs (P, 2, 17)."""

    ids: list[str]
    landmarks: np.ndarray
    aus: np.ndarray


def london_ids(root: Path) -> list[str]:
    """Person ids with both photos, sorted."""
    neutral = {p.stem.split("_")[0] for p in (Path(root) / "neutral").glob("*_03.jpg")}
    smiling = {p.stem.split("_")[0] for p in (Path(root) / "smiling").glob("*_08.jpg")}
    return sorted(neutral & smiling)


def split_ids(ids: list[str]) -> tuple[list[str], list[str]]:
    """(fitted, held out): every HOLDOUT_EVERY-th person of the sorted ids is held out."""
    ids = sorted(ids)
    held = [p for i, p in enumerate(ids) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    return [p for p in ids if p not in held], held


def measure_london(root: Path, ids: list[str]) -> PhotoPairs:
    """MediaPipe and the built-in AU estimator (per-image mode) on both photos of each person."""
    from media.images import load_rgb
    from openface.au_estimator import AUEstimator
    from openface.landmarks import Landmarker

    estimator = AUEstimator()
    kept, landmarks, aus = [], [], []
    with Landmarker() as landmarker:
        for person in ids:
            faces = [landmarker.detect(load_rgb(Path(root) / sub / f"{person}_{n}.jpg"))
                     for sub, n in (("neutral", "03"), ("smiling", "08"))]
            if not (faces[0] and faces[1]):
                print(f"London {person}: no face in one of the photos, left out", file=sys.stderr)
                continue
            kept.append(person)
            landmarks.append([f[0].landmarks for f in faces])
            aus.append([estimator.intensities(f[0]) for f in faces])
    return PhotoPairs(kept, np.array(landmarks), np.array(aus))


@dataclass
class Clips:
    """MEGC clips: per clip the landmarks (T, 478, 3) px, OpenFace's intensities (T, 17) and the built-in
    estimator's sequence-mode intensities (T, 17)."""

    names: list[str]
    landmarks: list[np.ndarray]
    openface: list[np.ndarray]
    estimated: list[np.ndarray]


def measure_megc(megc_root: Path) -> Clips:
    from openface.au_estimator import AUEstimator
    from openface.landmarks import Face
    from openface.megc_clips import measure_package

    clips = measure_package(Path(megc_root))
    estimator = AUEstimator()
    estimated = [estimator.sequence([Face(lm, dict(zip(c.blendshape_names, shapes)), np.eye(4))
                                     for lm, shapes in zip(c.landmarks, c.blendshapes)], fps=CLIP_FPS)
                 for c in clips]
    return Clips([c.name for c in clips], [c.landmarks for c in clips], [c.openface for c in clips], estimated)


def save_cache(path: Path, pairs: PhotoPairs, clips: Clips) -> None:
    arrays = {"london/ids": np.array(pairs.ids), "london/landmarks": pairs.landmarks, "london/aus": pairs.aus}
    for name, lm, of, est in zip(clips.names, clips.landmarks, clips.openface, clips.estimated):
        arrays.update({f"megc/{name}/landmarks": lm, f"megc/{name}/openface": of, f"megc/{name}/estimated": est})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load_cache(path: Path) -> tuple[PhotoPairs, Clips]:
    with np.load(path) as data:
        pairs = PhotoPairs(data["london/ids"].tolist(), data["london/landmarks"], data["london/aus"])
        names = sorted({k.split("/")[1] for k in data.files if k.startswith("megc/")})
        clips = Clips(names, *([data[f"megc/{n}/{what}"] for n in names] for what in ("landmarks", "openface",
                                                                                     "estimated")))
    return pairs, clips


# --- geometry: head pose removal and canonical units ---------------------------------------------------------------

def expression_motion(neutral: np.ndarray, expressive: np.ndarray) -> np.ndarray:
    """(478, 2) displacement neutral -> expressive without head motion (a 3-D similarity on the points expressions
    do not move, motion/canonical.py), in the neutral face's canonical units."""
    still = remove_head_motion(np.asarray(expressive, dtype=np.float64)[None], reference=neutral)[0]
    return canonical_frame(neutral).vectors_to_canonical(still - neutral)


def canonical_3d(face: np.ndarray) -> np.ndarray:
    """(478, 3) canonical x, y and depth (centred) in the same unit: for the left-right pairing of the mesh."""
    frame = canonical_frame(face)
    depth = (face[:, 2] - face[:, 2].mean()) / frame.unit
    return np.column_stack([frame.to_canonical(face), depth])


def mirror_pairs(reference_3d: np.ndarray) -> np.ndarray:
    """(478,) index of each point's left-right twin: the one-to-one assignment of the points to the mirrored
    points (x -> -x) with the least total distance; midline points pair with themselves."""
    from scipy.optimize import linear_sum_assignment

    mirrored = reference_3d * np.array([-1.0, 1.0, 1.0])
    cost = np.linalg.norm(reference_3d[:, None] - mirrored[None], axis=-1)
    _, twin = linear_sum_assignment(cost)
    if np.any(twin[twin] != np.arange(len(twin))):
        raise ValueError("the mirror pairing of the reference mesh is not symmetric")
    return twin


def symmetrized(field: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """Mean of a (..., 478, 2) point field and its mirror image (x negated, points swapped with their twins)."""
    return 0.5 * (field + field[..., twin, :] * np.array([-1.0, 1.0]))


# --- FACS priors: one displacement pattern per AU built on the mesh regions -------------------------------------
# Index lists are the subject's right side (image left) of MediaPipe's mesh; the left side follows by mirroring.
INNER_BROW = (107, 55, 66, 65)
OUTER_BROW = (70, 46, 63, 53)
MID_BROW = (105, 52)
UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
LOWER_LID = (7, 163, 144, 145, 153, 154, 155)  # below UPPER_LID, point for point
CHEEK = (50, 101, 118, 117, 119, 100, 36, 205, 187, 123)
NOSE_WING = (64, 48, 129, 98, 102, 219, 115)
LIP_CORNER = (61, 78, 62, 76, 184, 146)
# Lip contours (both sides, corners 61 and 291 and inner corners 78 and 308 excluded): which lip a point belongs to.
UPPER_LIP = (185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324)
CHIN = (152, 148, 176, 175, 199, 200, 18, 83, 201, 208, 171, 377, 400, 396, 428, 421, 313, 32, 262)
IRISES = tuple(range(468, 478))
BROW_ZONE_Y = -0.13  # canonical y above which (towards the forehead) the brow AUs act; the upper lids sit at -0.06


@dataclass(frozen=True)
class Blob:
    """A displacement ``(outward, down)`` per unit intensity at the anchors, falling off as a Gaussian of the
    distance to the nearest anchor (radius in canonical units); outward = away from the face's midline."""

    anchors: tuple[int, ...]
    outward: float
    down: float
    radius: float
    gate: str = ""  # "brow": forehead side of the brow zone only; "upper"/"lower": that side of the lips only


# Magnitudes in canonical units per OpenFace intensity unit (intensity 5 = the maximum FACS describes): a full brow
# raise is about 6-8 mm on a 90-100 mm outer-eye-corner distance (0.08 -> 0.016 per unit), a wide-open upper lid
# 4-5 mm (0.05 -> 0.010), a full smile's lip corners about 0.06 up and 0.04 out (London's photos, AU12 change 3.2).
FACS_BLOBS: dict[str, tuple[Blob, ...]] = {
    "AU01": (Blob(INNER_BROW, -0.002, -0.016, 0.10, "brow"),),
    "AU02": (Blob(OUTER_BROW, 0.001, -0.016, 0.09, "brow"),),
    "AU04": (Blob(INNER_BROW + MID_BROW, -0.007, 0.010, 0.09, "brow"), Blob(OUTER_BROW, 0.0, 0.006, 0.08, "brow")),
    "AU05": (Blob(UPPER_LID, 0.0, -0.010, 0.025),),
    "AU06": (Blob(CHEEK, 0.002, -0.010, 0.09), Blob(LOWER_LID, 0.0, -0.005, 0.025)),
    "AU07": (Blob(LOWER_LID, 0.0, -0.008, 0.025), Blob(UPPER_LID, 0.0, 0.002, 0.02)),
    "AU09": (Blob(NOSE_WING, -0.001, -0.010, 0.06), Blob((0, 37, 39), 0.0, -0.004, 0.05, "upper"),
             Blob(INNER_BROW, 0.0, 0.004, 0.07, "brow")),
    "AU10": (Blob((0, 37, 39, 40, 13, 82, 81, 80), 0.0, -0.012, 0.05, "upper"), Blob(NOSE_WING, 0.0, -0.004, 0.05)),
    "AU12": (Blob(LIP_CORNER, 0.008, -0.012, 0.09), Blob(CHEEK, 0.002, -0.004, 0.09)),
    "AU14": (Blob(LIP_CORNER, 0.004, 0.0, 0.05),),
    "AU15": (Blob(LIP_CORNER, 0.002, 0.012, 0.08),),
    "AU17": (Blob(CHIN, 0.0, -0.010, 0.10, "lower"), Blob((17, 84, 181, 14, 87, 178), 0.0, -0.008, 0.05, "lower")),
    "AU20": (Blob(LIP_CORNER, 0.012, 0.002, 0.08),),
    "AU23": (Blob(LIP_CORNER, -0.006, 0.0, 0.05), Blob((0, 37, 39), 0.0, 0.003, 0.03, "upper"),
             Blob((17, 84, 181), 0.0, -0.003, 0.03, "lower")),
    "AU25": (Blob((14, 87, 178, 88, 17, 84, 181, 91), 0.0, 0.014, 0.05, "lower"),
             Blob((13, 82, 81, 80), 0.0, -0.004, 0.03, "upper")),
}
JAW_DROP_PER_UNIT = 0.030  # AU26: chin down 0.03 per unit (intensity 2: about 6 mm)
BLINK_CLOSED_AT = 3.0  # AU45: OpenFace's blink intensity at which the lids are shut (and past which nothing moves)


def mouth_line_y(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Height of the lips' meeting line at x: the inner-lip contour between the inner corners, flat beyond."""
    inner = reference[[78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]]
    order = np.argsort(inner[:, 0])
    return np.interp(x, inner[order, 0], inner[order, 1])


def lower_face(reference: np.ndarray) -> np.ndarray:
    """(478,) bool: the points that move with the lower lip and the jaw (below the lips' meeting line)."""
    lower = reference[:, 1] > mouth_line_y(reference, reference[:, 0])
    lower[list(LOWER_LIP)] = True
    lower[list(UPPER_LIP)] = False
    return lower


def gate_weights(reference: np.ndarray, gate: str) -> np.ndarray:
    if gate == "brow":  # soft edge 0.02 wide: the lid crease moves a little with the brow, the lid itself not
        return 1.0 / (1.0 + np.exp((reference[:, 1] - BROW_ZONE_Y) / 0.02))
    if gate in ("upper", "lower"):
        lower = lower_face(reference)
        return (lower if gate == "lower" else ~lower).astype(float)
    return np.ones(len(reference))


def both_sides(indices, twin: np.ndarray) -> list[int]:
    return sorted(set(indices) | set(twin[list(indices)].tolist()))


def blob_field(reference: np.ndarray, twin: np.ndarray, blob: Blob) -> tuple[np.ndarray, np.ndarray]:
    """(478, 2) displacement and (478,) weight of one Blob on both sides of the face."""
    anchors = reference[both_sides(blob.anchors, twin)]
    distance = np.linalg.norm(reference[:, None] - anchors[None], axis=-1).min(1)
    weight = np.exp(-0.5 * (distance / blob.radius) ** 2) * gate_weights(reference, blob.gate)
    side = np.sign(reference[:, 0])  # outward: +x on the face's left (image right), -x on its right
    return weight[:, None] * np.column_stack([side * blob.outward, np.full(len(side), blob.down)]), weight


def jaw_drop(reference: np.ndarray) -> np.ndarray:
    """AU26 per unit: the lower lip, chin and jaw move down, the chin most, the jaw less towards the ears
    (it turns about the joints in front of them); the lip corners, on the lips' line, half."""
    lower = lower_face(reference).astype(float)
    chin_y, line_y = reference[152, 1], mouth_line_y(reference, reference[:, 0])
    depth_below = np.clip((reference[:, 1] - line_y) / (chin_y - line_y), 0.0, 1.0)
    towards_ears = np.clip((0.85 - np.abs(reference[:, 0])) / 0.4, 0.0, 1.0)
    amount = lower * (0.8 + 0.2 * depth_below) * towards_ears
    amount[[61, 291, 78, 308]] = 0.5 * towards_ears[[61, 291, 78, 308]]
    return JAW_DROP_PER_UNIT * np.column_stack([np.zeros(len(amount)), amount])


def blink(reference: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """AU45 per unit: at BLINK_CLOSED_AT the upper lid has come down 85 % of the way to the lower lid and the lower
    lid up the rest; the skin just above the lid follows it (Gaussian, radius 0.03)."""
    field = np.zeros_like(reference)
    upper, lower = both_sides(UPPER_LID, twin), both_sides(LOWER_LID, twin)
    pairs = dict(zip(UPPER_LID, LOWER_LID))
    pairs.update({int(twin[u]): int(twin[v]) for u, v in zip(UPPER_LID, LOWER_LID)})
    for up, low in pairs.items():
        gap = reference[low] - reference[up]
        field[up] += 0.85 * gap
        field[low] -= 0.15 * gap
    moved = np.zeros(len(reference), bool)
    moved[upper + lower] = True
    distance = np.linalg.norm(reference[:, None] - reference[upper][None], axis=-1).min(1)
    follow = np.exp(-0.5 * (distance / 0.03) ** 2) * (reference[:, 1] < reference[upper, 1].max()) * ~moved
    field += follow[:, None] * field[upper].mean(0) * np.array([0.0, 1.0])
    return field / BLINK_CLOSED_AT


def facs_priors(reference: np.ndarray, twin: np.ndarray, names=OPENFACE_AUS) -> tuple[np.ndarray, np.ndarray]:
    """(K, 478, 2) FACS prior pattern per AU and (K, 478) its support (1 where the AU acts, 0 far from it)."""
    priors = np.zeros((len(names), len(reference), 2))
    support = np.zeros((len(names), len(reference)))
    for k, au in enumerate(names):
        if au == "AU26":
            priors[k] = jaw_drop(reference)
            support[k] = np.linalg.norm(priors[k], axis=1) / np.linalg.norm(priors[k], axis=1).max()
        elif au == "AU45":
            priors[k] = blink(reference, twin)
            support[k] = np.linalg.norm(priors[k], axis=1) > 0
        else:
            for blob in FACS_BLOBS[au]:
                field, weight = blob_field(reference, twin, blob)
                priors[k] += field
                support[k] = np.maximum(support[k], weight)
    priors[:, list(IRISES)] = 0.0  # the irises keep their place and shape: the warp moves the lids around them
    support[:, list(IRISES)] = 0.0
    return priors, support


# --- the fit ----------------------------------------------------------------------------------------------------
# AUs whose pattern the London smiles determine (the estimator's AU6, AU10 and AU12 rise in 76-79 of 80 smiles):
# light ridge towards the prior. Every other AU changes little or spuriously in a smile (AU4 and AU17 follow the
# cheeks and the open lips there), so its pattern keeps close to FACS unless much data moves it.
DATA_AUS = ("AU06", "AU10", "AU12")
RIDGE_DATA, RIDGE_FACS = 5.0, 200.0
CLIP_SMOOTHING_FRAMES = 2.0  # Gaussian sigma over time (10 ms at 200 fps), against MediaPipe's and OpenFace's jitter
SUPPORT_FLOOR = 1e-3  # far from an AU's region its ridge is 1000x stronger: the pattern stays at the prior there


def london_samples(pairs: PhotoPairs, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """AU change (N, 17) and motion (N, 478, 2) of the people ``ids``: neutral -> smiling."""
    rows = [pairs.ids.index(p) for p in ids]
    motion = np.array([expression_motion(*pairs.landmarks[r]) for r in rows])
    return pairs.aus[rows, 1] - pairs.aus[rows, 0], motion


def clip_samples(landmarks: np.ndarray, intensities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One clip's AU change from the onset and motion from the onset, every frame after the first, smoothed."""
    from scipy.ndimage import gaussian_filter1d

    still = remove_head_motion(np.asarray(landmarks, dtype=np.float64))
    motion = canonical_frame(landmarks[0]).vectors_to_canonical(still - landmarks[0])
    motion = gaussian_filter1d(motion, CLIP_SMOOTHING_FRAMES, axis=0, mode="nearest")
    aus = gaussian_filter1d(np.asarray(intensities, dtype=np.float64), CLIP_SMOOTHING_FRAMES, axis=0, mode="nearest")
    return (aus - aus[0])[1:], (motion - motion[0])[1:]


def ridge_to_prior(changes: np.ndarray, motion: np.ndarray, weights: np.ndarray, priors: np.ndarray,
                   ridge: np.ndarray) -> np.ndarray:
    """Patterns (K, 478, 2) minimising, per point, sum_n w_n |motion_n - sum_k a_nk p_k|^2 + sum_k r_k |p_k -
    prior_k|^2, where ``ridge`` (K, 478) may differ per point: closed form, one KxK solve per point."""
    gram = changes.T @ (weights[:, None] * changes)  # (K, K)
    rhs = np.einsum("nk,n,npc->pkc", changes, weights, motion)  # (P, K, 2)
    system = gram[None] + np.einsum("kp,kj->pkj", ridge, np.eye(len(gram)))  # (P, K, K)
    rhs = rhs + np.einsum("kp,kpc->pkc", ridge, priors)
    return np.linalg.solve(system, rhs).transpose(1, 0, 2)


def reference_shape(pairs: PhotoPairs, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric mean neutral face of ``ids`` in canonical units (478, 2) and the mirror pairing."""
    rows = [pairs.ids.index(p) for p in ids]
    mean_3d = np.mean([canonical_3d(pairs.landmarks[r, 0]) for r in rows], axis=0)
    twin = mirror_pairs(mean_3d)
    return symmetrized(mean_3d[:, :2], twin), twin


def fit(pairs: PhotoPairs) -> dict:
    """Everything the primitives file holds, fitted on the London people outside the held-out split."""
    fitted, held = split_ids(pairs.ids)
    reference, twin = reference_shape(pairs, fitted)
    priors, support = facs_priors(reference, twin)
    changes, motion = london_samples(pairs, fitted)
    weights = np.ones(len(changes))
    per_au = np.array([RIDGE_DATA if au in DATA_AUS else RIDGE_FACS for au in OPENFACE_AUS])
    ridge = per_au[:, None] / np.maximum(support ** (1 / 2.25), SUPPORT_FLOOR)  # support at 1.5x the radius
    patterns = symmetrized(ridge_to_prior(changes, motion, weights, priors, ridge), twin)
    patterns[:, list(IRISES)] = 0.0
    saturation = np.array([BLINK_CLOSED_AT if au == "AU45" else 5.0 for au in OPENFACE_AUS])
    return {"names": np.array(OPENFACE_AUS), "reference": reference, "patterns": patterns, "priors": priors,
            "saturation": saturation, "twin": twin, "fitted_ids": np.array(fitted), "held_out_ids": np.array(held)}


# --- checks -----------------------------------------------------------------------------------------------------
CORNERS = (61, 291)
HALF_WAY = 0.5  # the bar: the driven corners move at least half as far as the real smile's


def smile_check(primitives, pairs: PhotoPairs, ids: list[str]) -> dict:
    """Per person of ``ids``: the neutral face driven by the AU change to the same person's smiling photo, against
    the real smile, at the mouth corners (canonical units of the person's neutral face). ``along``: the driven
    corner's displacement projected on the real one, as a share of the real one's length (>= 0.5 on both corners:
    at least half as far, in the same direction); ``length_ratio`` and ``cosine`` apart."""
    changes, motion = london_samples(pairs, ids)
    # Through the AU-matrix path's own retargeting: the patterns live on the reference face and are mapped onto
    # each person's neutral face (their canonical shape), as test mode maps them onto a template.
    driven = np.stack([retarget(primitives.displacements(change[None], OPENFACE_AUS), primitives.reference,
                                neutral_shape(pairs, person))[0]
                       for change, person in zip(changes, ids)])[:, list(CORNERS)]
    real = motion[:, list(CORNERS)]
    real_length, driven_length = np.linalg.norm(real, axis=-1), np.linalg.norm(driven, axis=-1)
    dot = (driven * real).sum(-1)
    along = dot / real_length ** 2
    cosine = dot / np.maximum(real_length * driven_length, 1e-12)
    meets = (along >= HALF_WAY).all(axis=1)
    return {"people": len(ids), "median_along": float(np.median(along)),
            "median_length_ratio": float(np.median(driven_length / real_length)),
            "median_cosine": float(np.median(cosine)), "share_meeting": float(meets.mean()),
            "real_corner_motion_median": float(np.median(real_length)),
            "failing": [p for p, ok in zip(ids, meets) if not ok]}


def neutral_shape(pairs: PhotoPairs, person: str) -> np.ndarray:
    """A person's neutral face in its own canonical frame (478, 2)."""
    neutral = pairs.landmarks[pairs.ids.index(person), 0]
    return canonical_frame(neutral).to_canonical(neutral)


def clip_check(primitives, clips: Clips) -> dict:
    """Per MEGC clip and AU source (OpenFace's CSVs, the built-in estimator's sequence mode): the motion the
    primitives predict from the AU change against the clip's real motion (all frames and points): their
    correlation, and the real motion's least-squares slope on the predicted one (1 = right magnitude). A check of
    the FACS magnitudes against real micro-expressions, on clips the fit never saw."""
    out = {}
    for k, name in enumerate(clips.names):
        row = {}
        for source, curves in (("openface", clips.openface[k]), ("estimator", clips.estimated[k])):
            changes, motion = clip_samples(clips.landmarks[k], curves)
            predicted = primitives.displacements(changes, OPENFACE_AUS).reshape(-1)
            real = motion.reshape(-1)
            row[source] = {"correlation": float(np.corrcoef(predicted, real)[0, 1]),
                           "slope": float(predicted @ real / max(predicted @ predicted, 1e-12))}
        row["real_rms"] = float(np.sqrt(np.mean(motion ** 2)))
        out[name] = row
    return out


def print_smile_check(result: dict) -> None:
    print(f"London held-out smile check, {result['people']} people (mouth corners 61 and 291, canonical units): "
          f"median along-ratio {result['median_along']:.2f}, median length ratio "
          f"{result['median_length_ratio']:.2f}, median direction cosine {result['median_cosine']:.3f}, "
          f"{result['share_meeting']:.0%} of people at least half way on both corners (real corner motion, "
          f"median {result['real_corner_motion_median']:.3f}); below half way: {', '.join(result['failing']) or '-'}")


def print_clip_check(result: dict) -> None:
    print("MEGC clips (not fitted), motion predicted from the AU change against the real motion: correlation, "
          "real-on-predicted slope")
    print("| clip | OpenFace AUs: r | slope | estimator AUs: r | slope | real rms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, row in result.items():
        print(f"| {name} | {row['openface']['correlation']:.2f} | {row['openface']['slope']:.2f} | "
              f"{row['estimator']['correlation']:.2f} | {row['estimator']['slope']:.2f} | {row['real_rms']:.4f} |")


# --- files ------------------------------------------------------------------------------------------------------
LONDON_TERMS = ("CC BY 4.0: DeBruine and Jones (2017), Face Research Lab London Set, figshare, "
                "doi 10.6084/m9.figshare.5047666")


def provenance(result: dict, checks: dict) -> dict:
    """The JSON written beside the patterns: data, terms, split, settings, and where each pattern came from."""
    change = {au: float(np.linalg.norm(result["patterns"][k] - result["priors"][k])
                        / max(np.linalg.norm(result["priors"][k]), 1e-12)) for k, au in enumerate(OPENFACE_AUS)}
    return {
        "written_by": "python -m motion.fit_primitives (docs/motion.md, 'AU-matrix path: motion primitives')",
        "data": {"london": {"terms": LONDON_TERMS, "fitted_people": result["fitted_ids"].tolist(),
                            "held_out_people": result["held_out_ids"].tolist(),
                            "split": f"sorted person ids, every {HOLDOUT_EVERY}th (positions 3, 7, ...) held out",
                            "aus": "built-in AU estimator, per-image mode, smiling minus neutral"}},
        "terms": "CC BY 4.0, inherited from the London set (cite it); the MEGC clips only check the patterns",
        "units": "canonical: origin between landmarks 33 and 263, x towards 263, y down, unit = |263 - 33|",
        "model": "displacement = sum_k clip(a_k, -saturation_k, saturation_k) * pattern_k (per unit intensity)",
        "fit": {"data_driven_aus": list(DATA_AUS), "ridge_data": RIDGE_DATA, "ridge_facs": RIDGE_FACS,
                "support_floor": SUPPORT_FLOOR, "clip_smoothing_frames": CLIP_SMOOTHING_FRAMES,
                "stable_points": list(STABLE_POINTS), "symmetric": True},
        "pattern_origin": {au: ("London smiles (data) with a FACS prior" if au in DATA_AUS else "FACS prior")
                           + f"; relative change from the FACS prior {change[au]:.2f}" for au in OPENFACE_AUS},
        "checks": checks,
    }


def write_primitives(result: dict, info: dict, out: Path) -> None:
    """The .npz and .json, each written to a temporary name first so a failure leaves no half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: result[k] for k in ("names", "reference", "patterns", "saturation", "twin", "fitted_ids",
                                     "held_out_ids")}
    tmp_npz, tmp_json = out.with_name(out.stem + ".tmp.npz"), out.with_name(out.stem + ".tmp.json")
    with open(tmp_npz, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    tmp_json.write_text(json.dumps(info, indent=1) + "\n")
    tmp_npz.replace(out)
    tmp_json.replace(out.with_suffix(".json"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--london", required=True, help="the London set: neutral/NNN_03.jpg and smiling/NNN_08.jpg")
    p.add_argument("--megc_root", default=None,
                   help="the MEGC2021 package (clips with OpenFace CSVs): adds the clip check (not fitted on)")
    p.add_argument("--cache", default=None, help=".npz of the MediaPipe measurements, re-used when it exists")
    p.add_argument("--out", default=None, help="primitives file to write (default: motion/au_primitives.npz)")
    p.add_argument("--check", nargs="?", const="", default=None, metavar="FILE",
                   help="score the shipped primitives (or FILE) on the held-out London people; writes nothing")
    return p


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def measurements(args) -> tuple[PhotoPairs, Clips | None]:
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        pairs, clips = load_cache(cache)
        if not args.megc_root or clips.names:
            return pairs, (clips if args.megc_root else None)
        clips = measure_megc(Path(args.megc_root))
        save_cache(cache, pairs, clips)
        return pairs, clips
    pairs = measure_london(Path(args.london), london_ids(Path(args.london)))
    clips = measure_megc(Path(args.megc_root)) if args.megc_root else Clips([], [], [], [])
    if cache is not None:
        save_cache(cache, pairs, clips)
    return pairs, (clips if args.megc_root else None)


def run_check(args) -> dict:
    from motion.primitives import load_primitives

    try:
        primitives = load_primitives(args.check or None)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    held = primitives.info.get("data", {}).get("london", {}).get("held_out_people")
    if not held:
        fail(f"{args.check or 'the shipped primitives'}: its .json names no held-out London people; refit it with "
             f"python -m motion.fit_primitives --london ...")
    missing = [p for p in held if p not in london_ids(Path(args.london))]
    if missing:
        fail(f"{args.london}: held-out people {', '.join(missing)} have no neutral/smiling photo pair; pass the "
             f"London set's folder (neutral/NNN_03.jpg, smiling/NNN_08.jpg)")
    result = {"london": smile_check(primitives, measure_london(Path(args.london), held), held)}
    print_smile_check(result["london"])
    if args.megc_root:
        result["megc"] = clip_check(primitives, measure_megc(Path(args.megc_root)))
        print_clip_check(result["megc"])
    return result


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if not london_ids(Path(args.london)):
        fail(f"{args.london}: no London photo pairs (neutral/NNN_03.jpg with smiling/NNN_08.jpg); pass the London "
             f"set's folder, e.g. ../shared/data/london")
    if args.megc_root and not (Path(args.megc_root).is_dir() and any(Path(args.megc_root).glob("*/imgs"))):
        fail(f"{args.megc_root}: no MEGC clip folders (<clip>/imgs with <clip>/csvs); pass the MEGC2021 package's "
             f"folder or leave out --megc_root")
    if args.check is not None:
        return run_check(args)
    from motion.primitives import PRIMITIVES_FILE, AUPrimitives

    pairs, clips = measurements(args)
    result = fit(pairs)
    primitives = AUPrimitives(tuple(OPENFACE_AUS), result["reference"], result["patterns"], result["saturation"])
    held = result["held_out_ids"].tolist()
    checks = {"london_held_out": smile_check(primitives, pairs, held)}
    print_smile_check(checks["london_held_out"])
    if clips is not None:
        checks["megc_clips"] = clip_check(primitives, clips)
        print_clip_check(checks["megc_clips"])
    out = Path(args.out) if args.out else PRIMITIVES_FILE
    write_primitives(result, provenance(result, checks), out)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return checks


if __name__ == "__main__":
    main()
