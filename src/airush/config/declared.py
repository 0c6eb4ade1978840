"""A class's `task` declaration (and other literal ones, such as a data source's `inputs`), read from its
source without importing it.

`airush --help` and the checks before Hydra starts ask every model, data set and feature set which task it
fits. Importing them all costs a second (pandas, scipy, torch); their source says it in a line:
`task = "abuse"` in the class, or inherited from a base such as `airush.abuse.models.Detector`. Anything the
reader cannot follow statically (a computed value, a base imported in an unusual way) falls back to
importing the class, so the answer is always the class's own.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

MAX_DEPTH = 8  # base classes followed; deeper hierarchies are imported


def declared_task(target: str) -> str | None:
    """The `task` a class declares (directly or through a base class); None when it declares none or the
    class cannot be found (the caller's error message names the target)."""
    found = _static_attribute(target, "task", MAX_DEPTH)
    if found is not _UNKNOWN:
        return found if isinstance(found, str) else None
    return imported_attribute(target, "task")


def declared_literal(target: str, attribute: str) -> Any:
    """A class attribute written as a literal (text, numbers, and tuples, lists or dicts of them) in the class
    or a base, read from source without importing anything; None when none declares it or the reader cannot
    follow (callers use this to answer fast, and check the imported class later)."""
    found = _static_attribute(target, attribute, MAX_DEPTH)
    return None if found is _UNKNOWN else copy.deepcopy(found)


def imported_attribute(target: str, attribute: str) -> str | None:
    from hydra.utils import get_class

    try:
        value = getattr(get_class(target), attribute, None)
    except Exception:
        return None
    return value if isinstance(value, str) else None


_UNKNOWN = object()


@cache
def _static_attribute(target: str, attribute: str, depth: int):
    module_name, _, class_name = target.rpartition(".")
    source = _module_source(module_name)
    if source is None or depth <= 0:
        return _UNKNOWN
    try:
        tree = ast.parse(source.read_text())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return _UNKNOWN
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if node is None:
        return _UNKNOWN
    for statement in node.body:
        value = _assigned(statement, attribute)
        if value is not _UNKNOWN:
            return value
    names = _imported_names(tree, module_name, source.name == "__init__.py")
    for base in node.bases:
        base_target = _base_target(base, names, module_name)
        if base_target is None:
            if isinstance(base, ast.Name) and base.id == "object":
                continue
            return _UNKNOWN
        found = _static_attribute(base_target, attribute, depth - 1)
        if found is not None:
            return found
    return None


def _assigned(statement: ast.stmt, attribute: str):
    """`attribute = <literal>` (or annotated) in a class body; _UNKNOWN when the statement is not one."""
    if isinstance(statement, ast.Assign):
        targets, value = statement.targets, statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        targets, value = [statement.target], statement.value
    else:
        return _UNKNOWN
    if not any(isinstance(t, ast.Name) and t.id == attribute for t in targets):
        return _UNKNOWN
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


def _imported_names(tree: ast.Module, module_name: str, is_package: bool) -> dict[str, str]:
    """Local name -> dotted path, for the module's top-level imports."""
    names: dict[str, str] = {}
    package = module_name if is_package else module_name.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else local
    return names


def _base_target(base: ast.expr, names: dict[str, str], module_name: str) -> str | None:
    if isinstance(base, ast.Name):
        return names.get(base.id, f"{module_name}.{base.id}")
    if isinstance(base, ast.Attribute):
        parts = []
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in names:
            return ".".join([names[base.id], *reversed(parts)])
    return None


def _module_source(module_name: str) -> Path | None:
    """The .py file of a module, found without running its package's __init__ beyond the top package."""
    top, _, rest = module_name.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for location in spec.submodule_search_locations or []:
        path = Path(location, *rest.split("."))
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
