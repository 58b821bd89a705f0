"""models/, data/, metrics/, openface/ are leaves: they never import options/ or solvers/ (ARCHITECTURE.md)."""
import ast

import pytest

from helpers import ROOT

LEAVES = ("models", "data", "metrics", "openface")
FORBIDDEN = ("options", "solvers")


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def leaf_files():
    return [p for leaf in LEAVES for p in sorted((ROOT / leaf).rglob("*.py"))]


def test_every_leaf_package_is_walked():
    # Each leaf must contribute its own files: a renamed or emptied package would otherwise pass unchecked.
    walked = {p.relative_to(ROOT).parts[0] for p in leaf_files()}
    assert walked == set(LEAVES)
    assert all((ROOT / leaf / "__init__.py") in leaf_files() for leaf in LEAVES)


@pytest.mark.parametrize("path", leaf_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_leaf_never_imports_options_or_solvers(path):
    bad = [m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_checker_catches_a_violation(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import os\nfrom solvers.trainer import Trainer\n")
    assert "solvers.trainer" in list(imported_modules(sample))
