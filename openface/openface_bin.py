"""Finding an OpenFace 2.x tool (FaceLandmarkImg, FeatureExtraction) and running it as a subprocess.

The staging of inputs and the reading of outputs are in openface/runner.py, whose docstring lists what the toolkit
relies on in OpenFace's behaviour; the CSV reading and face choice are in openface/openface_outputs.py.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ENV_VAR = "OPENFACE_BIN"
IMAGE_TOOL = "FaceLandmarkImg"
SEQUENCE_TOOL = "FeatureExtraction"
# Flags the runner sets itself: the staged input/output paths must not be overridden.
MANAGED_FLAGS = frozenset({"-f", "-fdir", "-out_dir", "-of", "-root", "-inroot", "-outroot"})

INSTALL_HELP = (
    "Install OpenFace 2.x (build it from https://github.com/TadasBaltrusaitis/OpenFace, see its wiki, or unpack the "
    "Windows release with its models) and pass --openface_bin /path/to/OpenFace/build/bin (the folder holding the "
    f"tools, or the tool itself) or set ${ENV_VAR}. Without OpenFace, use the toolkit's built-in front end: "
    "--au_backend builtin (offline MediaPipe landmarks, nothing to install besides requirements.txt).")


class OpenFaceError(RuntimeError):
    """OpenFace was found but failed: non-zero exit, timeout, or a CSV the toolkit cannot use."""


# ---------------------------------------------------------------------------------------------------------------
# Finding the binaries


def find_openface_bin(explicit: str | os.PathLike | None = None, tool: str = IMAGE_TOOL) -> Path:
    """Absolute path of an OpenFace tool: from ``explicit`` (--openface_bin), else $OPENFACE_BIN, else PATH.

    ``explicit`` and $OPENFACE_BIN may name the tool itself, another tool in the same folder (its sibling is used), or
    a folder holding the tools (also ``<folder>/bin`` and ``<folder>/build/bin``). The first source that is set
    decides, so a wrong --openface_bin is reported instead of silently using another install.
    """
    for origin, value in (("--openface_bin", explicit), (f"${ENV_VAR}", os.environ.get(ENV_VAR))):
        if value:
            candidates = _candidates(Path(value).expanduser(), tool)
            found = _first_executable(candidates)
            if found is None:
                raise FileNotFoundError(_not_found_message(tool, f"{origin}={value}", candidates))
            return found
    on_path = shutil.which(tool)
    if on_path:
        return Path(on_path).resolve()
    raise FileNotFoundError(_not_found_message(tool, f"--openface_bin (not given), ${ENV_VAR} (not set), PATH", []))


def _candidates(location: Path, tool: str) -> list[Path]:
    names = (tool, f"{tool}.exe")
    if location.is_dir():
        folders = (location, location / "bin", location / "build" / "bin")
        return [folder / name for folder in folders for name in names]
    if location.name.lower().removesuffix(".exe") == tool.lower():
        return [location]
    # A path to another OpenFace tool: the tools are installed side by side.
    return [location.parent / name for name in names]


def _first_executable(candidates: Iterable[Path]) -> Path | None:
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            # The real path, so that OpenFace finds its models next to argv[0] even behind a symlink.
            return path.resolve()
    return None


def _not_found_message(tool: str, looked_in: str, candidates: list[Path]) -> str:
    lines = [f"OpenFace's {tool} was not found (looked in: {looked_in})."]
    if candidates:
        lines.append("Tried: " + ", ".join(str(p) for p in candidates))
        not_executable = [p for p in candidates if p.is_file() and not os.access(p, os.X_OK)]
        if not_executable:
            lines.append(f"{not_executable[0]} exists but is not executable (chmod +x it).")
    lines.append(INSTALL_HELP)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Running a tool


def run_tool(argv: list[str], cwd: Path, timeout: float | None, display: Mapping[str, str]) -> None:
    """Run OpenFace with an argument list (never a shell). Raise OpenFaceError with the output tail on failure.

    ``display`` maps staged stems to what the user knows them by, for the error message.
    """
    tool = Path(argv[0]).name
    try:
        proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise OpenFaceError(f"{tool} timed out after {timeout:g} s\n"
                            + _output_tail(err.stdout, err.stderr, display)) from None
    except OSError as err:
        raise OpenFaceError(f"could not start {argv[0]}: {err}") from err
    if proc.returncode != 0:
        raise OpenFaceError(f"{tool} failed with exit code {proc.returncode}: {shlex.join(argv)}\n"
                            + _output_tail(proc.stdout, proc.stderr, display))


def _output_tail(stdout: bytes | None, stderr: bytes | None, display: Mapping[str, str], lines: int = 20) -> str:
    """Last lines of both streams (OpenFace prints its errors on stdout), staged names turned back into the user's."""
    parts = []
    for label, data in (("stderr", stderr), ("stdout", stdout)):
        text = (data or b"").decode("utf-8", errors="replace").strip()
        if text:
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {label} (last {lines} lines) ---\n{_unstage_names(tail, display)}")
    return "\n".join(parts) or "(no output)"


def _unstage_names(text: str, display: Mapping[str, str]) -> str:
    """'in/img000003.jpg' -> '/photos/Zoë 3.JPG': OpenFace only ever saw the staged names."""
    def original(match: re.Match) -> str:
        return display.get(match.group(1), match.group(0))
    return re.sub(r"(?:\bin[/\\])?\b([a-z]+\d{6,})(?:\.[A-Za-z0-9]+)?", original, text)


def check_extra_args(extra_args: Sequence[str]) -> list[str]:
    clash = sorted(MANAGED_FLAGS.intersection(extra_args))
    if clash:
        raise ValueError(f"extra_args must not contain {clash}: the runner sets inputs and outputs itself")
    return [str(a) for a in extra_args]
