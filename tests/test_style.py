"""The code style of ruff.toml (pycodestyle errors and warnings, pyflakes, import order, 120 columns) holds for the
whole repository, so a change that leaves an unused import or a long line fails here rather than in review."""
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def ruff() -> str:
    """The ruff of the running interpreter's environment (requirements.txt pins it), else one on PATH."""
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert found, "ruff is not installed: pip install -r requirements.txt"
    return found


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ruff(), "check", "--no-cache", *args], capture_output=True, text=True, cwd=ROOT)


def test_ruff_finds_nothing():
    done = check(str(ROOT))
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_would_catch_an_unused_import_and_a_long_line(tmp_path):
    (tmp_path / "sample.py").write_text("import os\n\nX = '" + "x" * 130 + "'\n")
    done = check("--config", str(ROOT / "ruff.toml"), str(tmp_path))
    assert done.returncode == 1 and "F401" in done.stdout and "E501" in done.stdout, done.stdout + done.stderr
