"""Per-AU motion primitives on the 478-point MediaPipe face mesh: an AU trajectory -> landmark motion.

The AU-matrix path of motion transfer (``--aus_matrix``, the demo, N2ME's curves): where no driving clip exists,
each AU moves the face by its own displacement pattern, and the patterns add up:

    displacement(t) = sum_k clip(a_k(t), -s_k, s_k) * pattern_k        (canonical units, relative to the neutral face)

``a_k`` is the AU's intensity (OpenFace scale 0..5, or an intensity *change*: the model is linear, so intensities
of 0 give exactly no motion and a negative change moves back), ``s_k`` the intensity past which the AU adds no more
motion (the lids cannot close further than shut). Canonical units (motion/canonical.py): origin at the midpoint of
the outer eye corners (landmarks 33 and 263), x from 33 to 263, y down the face, one unit = the 33-263 distance.
The patterns are defined on ``reference``, a mean neutral face in those units; the warp maps them onto a template.

The shipped patterns (``au_primitives.npz``, its provenance and terms in ``au_primitives.json``) are written by
``python -m motion.fit_primitives`` (docs/motion.md, "AU-matrix path: motion primitives").
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PRIMITIVES_FILE = Path(__file__).with_name("au_primitives.npz")
N_POINTS = 478
REFIT_HINT = "rewrite it with python -m motion.fit_primitives (docs/motion.md)"


@dataclass(frozen=True)
class AUPrimitives:
    """Displacement patterns per AU on the canonical reference face."""

    names: tuple[str, ...]  # the AUs covered, in schema order
    reference: np.ndarray  # (478, 2) canonical neutral face the patterns are defined on
    patterns: np.ndarray  # (K, 478, 2) canonical displacement per unit of intensity
    saturation: np.ndarray  # (K,) intensity past which an AU moves no further
    info: dict = field(default_factory=dict)  # provenance: data, terms, split (au_primitives.json)

    def pattern(self, name: str) -> np.ndarray:
        """(478, 2) displacement of one unit of ``name``."""
        return self.patterns[self.names.index(name)]

    def displacements(self, aus: np.ndarray, schema_names) -> np.ndarray:
        """(T, 478, 2) canonical displacement for the AU trajectory ``aus`` (T, len(schema_names)).

        AUs of the schema the primitives do not cover (N2ME's mouth opening "AU27*") add no motion; covered AUs
        missing from the schema count as 0."""
        aus = np.asarray(aus, dtype=np.float64)
        schema_names = list(schema_names)
        if aus.ndim == 1:
            aus = aus[None]
        if aus.ndim != 2 or aus.shape[1] != len(schema_names):
            raise ValueError(f"AU trajectory of shape {aus.shape} does not match the {len(schema_names)} schema "
                             f"names ({', '.join(schema_names)}): pass (T, {len(schema_names)}) intensities")
        if not np.all(np.isfinite(aus)):
            raise ValueError("AU trajectory contains NaN or inf")
        weights = np.zeros((len(aus), len(self.names)))
        for k, name in enumerate(self.names):
            if name in schema_names:
                weights[:, k] = np.clip(aus[:, schema_names.index(name)], -self.saturation[k], self.saturation[k])
        return np.einsum("tk,kpc->tpc", weights, self.patterns)


def load_primitives(path: Path | str | None = None) -> AUPrimitives:
    """The patterns in ``path`` (default: the shipped ``motion/au_primitives.npz``); a clear error for a bad file."""
    path = Path(path) if path is not None else PRIMITIVES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such AU primitives file; {REFIT_HINT}")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = tuple(str(n) for n in data["names"])
            reference = np.asarray(data["reference"], dtype=np.float64)
            patterns = np.asarray(data["patterns"], dtype=np.float64)
            saturation = np.asarray(data["saturation"], dtype=np.float64)
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"{path}: not an AU primitives file ({type(err).__name__}: {err}); {REFIT_HINT}") from err
    if reference.shape != (N_POINTS, 2) or patterns.shape != (len(names), N_POINTS, 2) or \
            saturation.shape != (len(names),):
        raise ValueError(f"{path}: AU primitives of unexpected shapes (reference {reference.shape}, patterns "
                         f"{patterns.shape}, saturation {saturation.shape}, {len(names)} AUs); {REFIT_HINT}")
    info_path = path.with_suffix(".json")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return AUPrimitives(names, reference, patterns, saturation, info)
