"""The layering rules of the package, read from the source (ast), so a change that breaks them
fails here: no stage imports another stage, measure/ and report/ import no stage, the engines
import no stage and no command, and the package has no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import compress

PKG = Path(compress.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """{module: compress modules it imports}, TYPE_CHECKING-only imports excluded."""
    out = {}
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        found = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("compress"):
                    found.add(node.module)
                    found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("compress"))
        out[_module_name(path)] = found
    modules = set(out)
    return {m: {i for i in deps if i in modules and i != m} for m, deps in out.items()}


def _is_stage(module: str) -> bool:
    return module.startswith("compress.stages.") and module != "compress.stages.base"


def test_no_stage_imports_another_stage():
    # setup / execute
    imports = _imports()
    # assert
    bad = {m: sorted(d for d in deps if _is_stage(d)) for m, deps in imports.items()
           if _is_stage(m)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_lower_layers_import_no_stage_and_no_command():
    # setup / execute
    imports = _imports()
    lower = ("compress.measure", "compress.report", "compress.trainer", "compress.onnx",
             "compress.models", "compress.data", "compress.text", "compress.search")
    # assert
    bad = {m: sorted(d for d in deps if _is_stage(d) or d.startswith("compress.cli"))
           for m, deps in imports.items() if m.startswith(lower)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_package_has_no_import_cycle():
    # setup: module-level imports only (a deferred import inside a function is not a cycle
    # at import time, so those are read separately below)
    imports = _imports()
    # execute: depth-first search for a back edge
    state, cycle = {}, []

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for d in sorted(imports.get(m, ())):
            if d.startswith(m + ".") or m.startswith(d + "."):
                continue  # a package and its own submodules
            if state.get(d) == "open" and not cycle:
                cycle.extend(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, [*path, d])
        state[m] = "done"

    for m in sorted(imports):
        if m not in state:
            visit(m, [m])
    # assert
    assert cycle == []
