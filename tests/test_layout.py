"""The package's shape: commands at the top over a layered library, no import cycles.

The import graph is built from the source with `ast`, function-level (lazy) imports included,
so a cycle hidden inside a function still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "abr_tune"
COMMANDS = {"train", "search", "evaluate", "sample", "report", "retrain", "config_doc", "convert"}
SHARED_LEAVES = {"errors", "checkpoint", "formatting", "metrics_registry", "paths"}
ENTRY = "cli"  # `abr-tune <command>`: imports the commands lazily, by name
MAX_LINES = 300


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path, modules: set[str]) -> set[str]:
    """Modules of the package that `path` imports anywhere in its body."""
    here = _module_name(path, root)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names = [stem] + [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != here and not here.startswith(name + "."):
                found.add(name)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = sorted(package.rglob("*.py"))
    modules = {_module_name(f, package.parent) for f in files}
    return {_module_name(f, package.parent): _imports(f, package.parent, modules) for f in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_lazy_import_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g  # lazy, still a loop of knowledge\n")
    (pkg / "c.py").write_text("from . import a\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]


def test_no_import_cycles_inside_the_package():
    assert cycles(import_graph()) == []


def test_nothing_imports_a_command():
    commands = {f"abr_tune.{c}" for c in COMMANDS}
    importers = {m: sorted(deps & commands) for m, deps in import_graph().items() if deps & commands}
    assert importers == {}


def test_top_level_holds_only_commands_and_shared_leaves():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == COMMANDS | SHARED_LEAVES | {ENTRY}
    graph = import_graph()
    for leaf in SHARED_LEAVES:  # a leaf imports no other part of the package but errors
        assert graph[f"abr_tune.{leaf}"] <= {"abr_tune.errors"}, leaf


def test_modules_fit_on_a_few_screens():
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
               for p in PACKAGE.rglob("*.py")}
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


def test_every_command_has_a_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.pop("abr-tune") == "abr_tune.cli:main"
    assert {target.split(":")[0].removeprefix("abr_tune.") for target in scripts.values()} == COMMANDS
    assert all(target.endswith(":main") for target in scripts.values())


def test_docstrings_cite_only_what_the_repository_holds():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "DESIGN" not in text and "issue " not in text.lower().replace("issues", ""), path
