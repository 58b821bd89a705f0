"""Which AU backend ``--au_backend auto`` (the default of ``--pre_treatment``) uses: a real OpenFace where one is
installed, else the built-in estimator."""
from __future__ import annotations

import os

from openface.openface_bin import ENV_VAR, find_openface_bin


def choose_au_backend(openface_bin: str | os.PathLike | None = None) -> str:
    """"openface" when the OpenFace tools are found (``--openface_bin``, ``$OPENFACE_BIN``, PATH), else "builtin".
    A location the user gave that holds no OpenFace is an error, not a silent switch to the built-in estimator."""
    try:
        find_openface_bin(openface_bin)
    except FileNotFoundError:
        if openface_bin or os.environ.get(ENV_VAR):
            raise
        return "builtin"
    return "openface"
