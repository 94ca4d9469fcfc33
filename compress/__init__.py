"""compress: train, distill, prune, quantize, export to ONNX and benchmark in ONNX Runtime.

The Python API (see docs/your-model.md) is loaded on first use, so that `import compress` and
`compress --help` stay light (no torch):

    import compress
    data = compress.data.from_arrays(x_train, y_train, x_test, y_test)
    student = compress.distill(teacher, MyStudent(), data, temperature=4, epochs=20).model
    fp32 = compress.export(student, "out/student.onnx", data)
    int8 = compress.quantize(fp32.path, data, max_val_accuracy_drop_pts=0.5)
    print(compress.bench([fp32.path, int8.path], data).summary())
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("train", "distill", "prune", "export", "quantize", "bench", "run", "ModelResult",
        "ArtifactResult", "BenchResult", "RunResult")
__all__ = ["ArtifactResult", "BenchResult", "ModelResult", "RunResult", "__version__", "bench",
           "data", "distill", "errors", "export", "prune", "quantize", "run", "search", "train"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from compress import data, errors
    from compress.api import (
        ArtifactResult,
        BenchResult,
        ModelResult,
        RunResult,
        bench,
        distill,
        export,
        prune,
        quantize,
        run,
        train,
    )
    from compress.api.search import search


class SearchPackage(types.ModuleType):
    """`compress.search` is both the engine package (compress/search/) and the API function:
    once the package is imported, Python binds the name to it, so the package takes this class
    (set in compress/search/__init__.py) and calling it runs the API's search. It lives here, in
    the package root that owns the public names, so the engine imports nothing above it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from compress.api.search import search

        return search(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "search":  # the engine package, callable as the API (compress/search/__init__.py)
        return importlib.import_module("compress.search")
    if name in _API:
        return getattr(importlib.import_module("compress.api"), name)
    if name in ("data", "errors"):
        return importlib.import_module(f"compress.{name}")
    raise AttributeError(f"module 'compress' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
