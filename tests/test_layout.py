"""The house's shape, read from src/ itself: imports point one way (no cycles; the generic layers never reach a
task's code) and every module stays small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src"
TASKS = ("airush.abuse", "airush.music")
# The layers every task builds on: what they import must never depend on which tasks exist.
GENERIC = (
    "airush.tracking",
    "airush.compute",
    "airush.config",
    "airush.records",
    "airush.data",
    "airush.runner",
    "airush.cli",
    "airush.api",
    "airush.job",
    "airush.model",
    "airush.task",
    "airush.inference",
)
MAX_LINES = 450


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file for every .py under `root` (a package is named by its __init__.py)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules in `known` that module `name` imports anywhere in its file: at the top, inside functions or
    under TYPE_CHECKING (a lazy import still ties two modules together). Importing `a.b.c` counts `a` and
    `a.b` too, whose __init__.py run first; `from a.b import c` counts `a.b.c` when c is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x` in package a.b is a.b.x
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            named.add(base)
            named.update(f"{base}.{alias.name}" for alias in node.names)
    with_parents = {".".join(m.split(".")[:i]) for m in named for i in range(1, m.count(".") + 2)}
    return {m for m in with_parents if m in known and m != name}


def is_within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules it imports, without a package's imports of its own submodules (a package that
    re-exports or lazily loads its parts is not a cycle with them)."""
    files = module_files(root)
    graph = {name: imported_modules(name, path, set(files)) for name, path in files.items()}
    return {
        name: {m for m in imported if not (files[name].name == "__init__.py" and is_within(m, (name,)))}
        for name, imported in graph.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle [a, b, ..., a] per back edge of a depth-first walk: empty exactly when the graph has none."""
    cycles: list[list[str]] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        path.append(module)
        for imported in sorted(graph[module]):
            if imported in path:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in done:
                visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)
    return cycles


def first_path(graph: dict[str, set[str]], start: str, goal: tuple[str, ...]) -> list[str] | None:
    """The shortest import chain from `start` to a module within `goal`, or None."""
    previous: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        step = []
        for module in frontier:
            for imported in sorted(graph[module]):
                if imported in previous:
                    continue
                previous[imported] = module
                if is_within(imported, goal):
                    chain = [imported]
                    while previous[chain[-1]] is not None:
                        chain.append(previous[chain[-1]])
                    return chain[::-1]
                step.append(imported)
        frontier = step
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = import_graph(SRC)
    assert {"airush.cli", "airush.runner", "airush.abuse.task", "airush.music.task"} <= set(found)
    assert "airush.runner" in found["airush.cli"]  # the builder sees src/ as it is
    return found


def test_the_graph_builder_on_a_small_tree(tmp_path: Path):
    """What counts as an import and as a cycle, on a tree made for it: relative and lazy imports tie modules
    together; a package loading its own submodules does not make a cycle with them."""
    files = {
        "pkg/__init__.py": "from pkg import low\n",  # a package importing its own submodule
        "pkg/low.py": "import pkg\n",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "def f():\n    from pkg.sub.c import g\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from ..a import x\nimport os\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["pkg.a"] == {"pkg", "pkg.b"}
    assert graph["pkg.b"] == {"pkg", "pkg.sub", "pkg.sub.c"}
    assert graph["pkg"] == set() and graph["pkg.low"] == {"pkg"}
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]
    assert first_path(graph, "pkg.a", ("pkg.sub",)) == ["pkg.a", "pkg.b", "pkg.sub"]


def test_the_import_graph_of_src_has_no_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in src/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_generic_layers_never_import_a_task(graph):
    """Directly or through another module: a new task must not need a change in the layers below it."""
    chains = [first_path(graph, m, TASKS) for m in sorted(graph) if is_within(m, GENERIC)]
    found = [" -> ".join(chain) for chain in chains if chain]
    assert not found, "generic modules that import a task:\n" + "\n".join(found)


def test_no_module_is_over_the_line_limit():
    lengths = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in sorted((SRC / "airush").rglob("*.py"))
    }
    over = {path: n for path, n in lengths.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
