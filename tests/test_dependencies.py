"""pyproject.toml declares what src/ imports, and nothing at runtime that src/ does not import."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
# extras that are not part of running shriven: their packages may not be imported by src/
DEV_EXTRAS = {"test", "bench"}


def _name(requirement: str) -> str:
    """The PEP 503 normalised distribution name of a requirement string."""
    bare = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def src_imports() -> dict[str, set[str]]:
    """Top-level module -> files of src/ importing it, for every absolute import."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def third_party(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    return {
        m: files
        for m, files in imports.items()
        if m not in sys.stdlib_module_names and m != "shriven" and m != "__future__"
    }


def test_every_package_src_imports_is_declared() -> None:
    project = _pyproject()
    declared = {_name(r) for r in project["dependencies"]}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        if extra not in DEV_EXTRAS:
            declared |= {_name(r) for r in reqs}
    dists = packages_distributions()
    undeclared = {}
    for module, files in sorted(third_party(src_imports()).items()):
        providers = {_name(d) for d in dists.get(module, [])}
        if not providers & declared:
            undeclared[module] = (sorted(providers) or ["not installed"], sorted(files)[:2])
    assert not undeclared, f"imported by src/ but not declared in pyproject.toml: {undeclared}"


def test_every_runtime_dependency_is_imported_by_src() -> None:
    imported = set(third_party(src_imports()))
    dists = packages_distributions()
    modules_of: dict[str, set[str]] = {}
    for module, names in dists.items():
        for d in names:
            modules_of.setdefault(_name(d), set()).add(module)
    unused = sorted(
        _name(r)
        for r in _pyproject()["dependencies"]
        if not modules_of.get(_name(r), set()) & imported
    )
    assert not unused, f"runtime dependencies nothing under src/ imports: {unused}"


def test_the_import_walk_sees_imports_inside_functions() -> None:
    # the walk must find a lazy import (shriven imports pyarrow inside the Parquet writer)
    assert "src/shriven/replay/export.py" in src_imports()["pyarrow"]
