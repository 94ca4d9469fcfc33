"""The layering rules of the package, read from the source (ast, imports inside functions
counted), so a change that breaks them fails here: no stage imports another stage; no engine
folder imports a stage, a command, the runner, the launcher or the API; the spine launches
processes without trainer/; measure/ imports no onnx/; no import loop between modules nor
between folders; every module under MAX_LINES lines. docs/development.md lists them."""

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


# What the stages share, not stages: the registry (package __init__s) and the base classes.
STAGE_HELPERS = {"compress.stages.base", "compress.stages.text"}
ENGINES = ("compress.measure", "compress.report", "compress.trainer", "compress.onnx",
           "compress.models", "compress.data", "compress.text", "compress.explain",
           "compress.search")
ABOVE_ENGINES = ("compress.stages", "compress.cli", "compress.runner", "compress.launch",
                 "compress.api", "compress.config")
SPINE = ("compress.config", "compress.runner", "compress.launch", "compress.api", "compress.cli")
MAX_LINES = 400
# Files others bring under MAX_LINES in this round (see issue 29): keep this list short.
LONG_FILES_ALLOWED: set[str] = set()


def _is_stage(module: str) -> bool:
    return module.startswith("compress.stages.") and module not in STAGE_HELPERS


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _folder(module: str) -> str:
    """The layer a module belongs to: its folder under compress/, or itself at the top."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_stage_imports_another_stage():
    # setup / execute
    imports = _imports()
    # assert
    bad = {m: sorted(d for d in deps if _is_stage(d)) for m, deps in imports.items()
           if _is_stage(m)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_engines_import_no_stage_command_runner_launcher_or_api():
    # setup / execute
    imports = _imports()
    # assert
    bad = {m: sorted(d for d in deps if _within(d, ABOVE_ENGINES))
           for m, deps in imports.items() if _within(m, ENGINES)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_spine_launches_processes_without_trainer():
    # setup / execute: launching (compress.launch) reads the process group itself
    imports = _imports()
    # assert
    bad = {m: sorted(d for d in deps if _within(d, ("compress.trainer.distributed",)))
           for m, deps in imports.items() if _within(m, SPINE)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_measure_is_a_leaf_over_onnxruntime():
    # setup / execute
    imports = _imports()
    # assert: measure/ imports no onnx/ (onnx/ builds on measure's sessions, not the reverse)
    bad = {m: sorted(d for d in deps if _within(d, ("compress.onnx",)))
           for m, deps in imports.items() if _within(m, ("compress.measure",))}
    assert {m: d for m, d in bad.items() if d} == {}


def test_no_import_loop_between_folders():
    # setup: folder -> folders it imports (the package root, whose __init__ loads the API
    # lazily, is no layer)
    imports = _imports()
    edges: dict[str, set[str]] = {}
    for m, deps in imports.items():
        for d in deps:
            a, b = _folder(m), _folder(d)
            if a != b and "compress" not in (a, b):
                edges.setdefault(a, set()).add(b)
    # execute: every pair of folders that reach each other
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {f: reach(f) for f in edges}
    loops = sorted((a, b) for a in reached for b in reached[a] if a < b and a in reached.get(b, ()))
    # assert
    assert loops == []


def test_modules_stay_under_the_line_limit():
    # setup / execute
    long = {p.relative_to(PKG).as_posix(): len(p.read_text().splitlines())
            for p in PKG.rglob("*.py")}
    # assert
    assert {p: n for p, n in long.items() if n > MAX_LINES and p not in LONG_FILES_ALLOWED} == {}


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
