"""Which way imports point (docs/reference.md, Layout): every arrow of the package graph is checked with ``ast``.

    main.py -> options, solvers; for_megc2021.py -> options, solvers, media (listing image files), monitor (logging)
    tools -> options, solvers, checkpoints, models, data, metrics, motion, openface, media, monitor
             (nothing imports tools; the bench parses the trainer's own flags so it measures the defaults the
             trainer runs)
    solvers -> checkpoints, models, data, metrics, motion, openface, media, monitor
    checkpoints -> models (the registry builds the networks a file's weights fit), catalog (the AU schemas)
    motion -> openface, media, catalog                            (landmarks; motion transfer never sees options)
    options -> models (the registry: --model choices), checkpoints.seed_formats only (--ckpt_format choices),
               catalog (the AU schemas), metrics.eval_flags only (the eval flags, declared once for main.py and
               python -m metrics.evaluate)
    metrics -> data, openface, media, catalog
    data -> openface, media, catalog
    models -> catalog
    openface -> media, catalog                                    (openface never imports data: one direction)
    catalog (the AU schema and the dataset table: declarations every layer shares), media, monitor -> nothing of
             this project
"""
import ast

import pytest

from helpers import ROOT

PACKAGES = ("catalog", "media", "monitor", "openface", "models", "checkpoints", "data", "metrics", "motion",
            "options", "solvers", "tools")
SCRIPTS = ("main", "for_megc2021")
ALLOWED = {
    "catalog": set(),
    "media": set(),
    "monitor": set(),
    "openface": {"media", "catalog"},
    "models": {"catalog"},
    "data": {"openface", "media", "catalog"},
    "metrics": {"data", "openface", "media", "catalog"},
    "checkpoints": {"models", "catalog"},
    "options": {"models", "checkpoints", "catalog", "metrics"},
    "motion": {"openface", "media", "catalog"},
    "solvers": {"checkpoints", "models", "data", "metrics", "motion", "openface", "media", "monitor", "catalog"},
    "tools": {"options", "solvers", "checkpoints", "models", "data", "metrics", "motion", "openface", "media",
              "monitor", "catalog"},
    "main": {"options", "solvers"},
    "for_megc2021": {"options", "solvers", "media", "monitor"},
}
OURS = set(PACKAGES) | set(SCRIPTS)
# Within an allowed package, only these modules (the rest of metrics/ is evaluation code options/ has no use for).
ONLY_MODULES = {("options", "metrics"): {"metrics.eval_flags"},
                ("options", "checkpoints"): {"checkpoints.seed_formats"}}


def imported_modules(path, source: str | None = None):
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def owner(path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def source_files():
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    return files + [ROOT / f"{script}.py" for script in SCRIPTS]


def forbidden_imports(path, source: str | None = None) -> list[str]:
    me = owner(path)
    bad = []
    for m in imported_modules(path, source):
        package = m.split(".")[0]
        if package not in OURS or package == me:
            continue
        only = ONLY_MODULES.get((me, package))
        if package not in ALLOWED[me] or (only is not None and m not in only):
            bad.append(m)
    return bad


def test_every_package_is_walked():
    # Each package must contribute its own files: a renamed or emptied package would otherwise pass unchecked.
    walked = {owner(p) for p in source_files()}
    assert walked == set(ALLOWED)
    assert all((ROOT / package / "__init__.py").is_file() for package in PACKAGES)


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_graph(path):
    bad = forbidden_imports(path)
    assert not bad, f"{path.relative_to(ROOT)} ({owner(path)}/) may import only {sorted(ALLOWED[owner(path)])}: {bad}"


def test_nothing_imports_tools_and_leaves_never_import_options_or_solvers():
    # Spelled out from ALLOWED so that loosening the table for these arrows fails here too.
    assert all("tools" not in allowed for who, allowed in ALLOWED.items() if who != "tools")
    for leaf in ("catalog", "media", "openface", "models", "checkpoints", "data", "metrics"):
        assert not ALLOWED[leaf] & {"options", "solvers", "tools"}
    assert not ALLOWED["catalog"], "catalog/ sits below every package: it imports nothing of this project"
    assert "data" not in ALLOWED["openface"] and "openface" in ALLOWED["data"]
    assert "checkpoints" not in ALLOWED["models"], "checkpoints/ sits above models/: the arrow points one way"


def test_checker_catches_a_violation():
    sample = ROOT / "openface" / "not_a_module.py"  # never read: the source is given
    source = "import os\nfrom data.images import x\nfrom solvers.trainer import Trainer\nfrom media.images import y\n"
    assert forbidden_imports(sample, source) == ["data.images", "solvers.trainer"]
    options = ROOT / "options" / "not_a_module.py"
    source = "from metrics.eval_flags import add_eval_flags\nfrom metrics.evaluate import evaluate\n"
    assert forbidden_imports(options, source) == ["metrics.evaluate"]  # options/ may use the flags module only


def test_model_choices_come_from_the_registry():
    from models.model_registry import MODELS
    from options import build_parser

    action = next(a for a in build_parser()._actions if a.dest == "model")
    assert tuple(action.choices) == tuple(MODELS) and action.default in MODELS
    for name, spec in MODELS.items():
        assert name in action.help and spec.help in action.help


def test_tests_import_helpers_never_each_other_or_conftest():
    # Shared test code lives in tests/helpers/; a test module importing another one couples their fixtures.
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        bad = [m for m in imported_modules(path) if m.split(".")[0].startswith("test_") or m == "conftest"]
        assert not bad, f"{path.name} imports {bad}: move what it needs to tests/helpers/"


def module_name(path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (imports inside functions included: they cycle just the same).
    ``from package import module`` is an edge to that module; any other name points at the module defining it."""
    modules = {module_name(p): p for p in source_files()}
    graph = {}
    for name, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        typing_only = {id(n) for block in ast.walk(tree)  # `if TYPE_CHECKING:` imports never run
                       if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for m in found:
                while m and m not in modules:  # "checkpoints.native.save_atomic" -> checkpoints.native
                    m = m.rpartition(".")[0]
                if m and m != name:
                    targets.add(m)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_cycles_between_modules():
    # A package's __init__ importing its own submodules is not a cycle unless one of them imports the package back.
    assert find_cycle(import_graph()) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check can fail


# ------------------------------------------------------------------------------------------------ names
# Every command module has its own main (and most their own build_parser / parse): the entry-point convention, the
# same thing for another command, so these may repeat.
ENTRY_POINT_NAMES = {"main", "build_parser", "parse"}


def library_files():
    return [p for p in source_files() if p.name not in ("__init__.py", "__main__.py")]


def test_no_two_modules_share_a_file_name():
    seen: dict[str, list[str]] = {}
    for path in library_files():
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


def public_definitions(path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_")]


def test_no_public_name_is_defined_twice():
    # Two `Calibration` classes or two `smooth` functions send a reader to the wrong file; one name, one thing.
    where: dict[str, list[str]] = {}
    for path in library_files():
        for name in public_definitions(path):
            where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1 and name not in ENTRY_POINT_NAMES}
    assert twice == {}


def test_every_tool_is_listed_in_the_package_docstring_and_the_reference():
    import re

    commands = {p.stem for p in (ROOT / "tools").glob("*.py") if "main" in public_definitions(p)}
    doc = (ROOT / "tools" / "__init__.py").read_text()
    listed = set(re.findall(r"^- ``(\w+)``:", doc, re.M))
    assert listed == commands, f"tools/__init__.py lists {sorted(listed)}, the package has {sorted(commands)}"
    reference = (ROOT / "docs" / "reference.md").read_text()
    layout = reference[reference.index("tools/            standalone commands"):reference.index("\nmedia/")]
    assert all(re.search(rf"\b{name}\b", layout) for name in commands), "docs/reference.md, Layout: tools/ line"
