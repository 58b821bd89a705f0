"""The one place that knows which Action Units the networks see, in which order and on which scale.

Everything else asks a schema object (``schema.n``, ``schema.names``) instead of writing "17" or "18".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# OpenFace intensity (`_r`) columns in the order OpenFace writes them and every seed stores them.
OPENFACE_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")

# OpenFace presence (`_c`) columns: AU28 is present here but has no intensity, so match by name, never position.
OPENFACE_PRESENCE = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                     "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU28", "AU45")

# N2ME's neutral model adds a landmark mouth-opening value ("AU27*") just before AU45.
MOUTH_OPEN = "AU27*"


@dataclass(frozen=True)
class AUSchema:
    """Names and order of the AU vector, and the raw intensity scale (OpenFace: 0..5)."""

    key: str
    names: tuple[str, ...]
    max_intensity: float = 5.0

    @property
    def n(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_network(self, raw: np.ndarray) -> np.ndarray:
        """Raw 0..5 intensities -> the [0, 1] range the networks are trained on."""
        return np.asarray(raw, dtype=np.float32) / self.max_intensity

    def to_raw(self, scaled: np.ndarray) -> np.ndarray:
        return np.asarray(scaled, dtype=np.float32) * self.max_intensity

    def check_vector(self, vec: np.ndarray, where: str, clip: bool = False) -> np.ndarray:
        """Validate one raw AU vector; `where` names its origin (file and row) for the error message.

        Intensities outside 0..max_intensity are an error naming the AU column: one typo (450 for 4.50) would
        otherwise train to a meaningless AU loss. ``clip=True`` (``--clip_aus``) clips them instead; callers count
        the clipped values with :meth:`out_of_range` and log the count."""
        arr = np.asarray(vec, dtype=np.float64).reshape(-1)
        if arr.size != self.n:
            raise ValueError(f"{where}: AU vector has {arr.size} values, schema '{self.key}' expects {self.n} "
                             f"({', '.join(self.names)}). In training --aus_schema picks the schema; in test mode the "
                             f"checkpoint's generator decides it: give AUs of that schema")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: AU vector contains NaN or inf: {arr.tolist()}")
        bad = self.out_of_range(arr)
        if bad.any() and not clip:
            cols = ", ".join(f"{self.names[j]}={arr[j]:g}" for j in np.flatnonzero(bad)[:5])
            raise ValueError(f"{where}: AU intensity outside 0..{self.max_intensity:g} in column {cols}. Fix the "
                             f"value (OpenFace intensities are 0..{self.max_intensity:g}), or pass --clip_aus to clip "
                             f"such values (the count is logged)")
        return np.clip(arr, 0.0, self.max_intensity)

    def out_of_range(self, arr: np.ndarray) -> np.ndarray:
        """Bool mask of the intensities outside 0..max_intensity."""
        arr = np.asarray(arr, dtype=np.float64)
        return (arr < 0) | (arr > self.max_intensity)


OPENFACE_17 = AUSchema("openface17", OPENFACE_AUS)
N2ME_18 = AUSchema("n2me18", OPENFACE_AUS[:-1] + (MOUTH_OPEN,) + OPENFACE_AUS[-1:])

SCHEMAS: dict[str, AUSchema] = {s.key: s for s in (OPENFACE_17, N2ME_18)}


def schema_for_size(n: int) -> AUSchema:
    """The schema whose vector length is `n` (used to recognise an existing AU table or checkpoint)."""
    for schema in SCHEMAS.values():
        if schema.n == n:
            return schema
    sizes = ", ".join(f"{s.key}={s.n}" for s in SCHEMAS.values())
    raise ValueError(f"no AU schema has {n} values (known: {sizes})")
