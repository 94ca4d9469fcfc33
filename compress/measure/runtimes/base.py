"""One small interface over the runtimes an app may run a model in: `Runtime.load(path)` gives a
`Loaded` model that predicts a batch and binds one for timing, or a `LoadFailure` that says why
not (the first unsupported op when the runtime names one).

In-process runtimes (onnxruntime, OpenVINO) return callables that `measure.latency` times
interleaved with every other candidate; an out-of-process runtime (onnxruntime-web in Node)
times itself in its own process (`Runtime.measure_external`), so its process start and the
pipe are outside the timed region."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress.errors import ConfigError


class RuntimeMissing(ConfigError):
    """A runtime named in `runtimes:` is not installed; the message says how to install it."""


@dataclass
class LoadFailure:
    """A model the runtime cannot load or run: the first unsupported op, when named."""

    error: str
    unsupported_op: str | None = None

    def as_dict(self) -> dict:
        return {"loaded": False, "error": self.error, "unsupported_op": self.unsupported_op}


# onnxruntime: "Could not find an implementation for QGemm(1) node with name ..."; OpenVINO:
# "No conversion rule found for operations: com.microsoft.QGemm" or "-- QLinearConv-18 with a
# message"; onnxruntime-web: "... Could not find an implementation for QLinearAdd(1) node ...".
_OP_PATTERNS = (r"No conversion rule found for operations:\s*([\w.:]+)",
                r"^-- ([A-Za-z]\w*)-\d+ with a message", r"implementation for (\w+)\(\d+\)",
                r"[Uu]nsupported (?:op|operator)[^\w]*([\w.:]+)")


def first_unsupported_op(message: str) -> str | None:
    for pattern in _OP_PATTERNS:
        found = re.search(pattern, message, re.MULTILINE)
        if found:
            return found.group(1).split(",")[0]
    return None


def failure(e: BaseException) -> LoadFailure:
    text = str(e)
    op = first_unsupported_op(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # the runtimes' first lines are often a source location; the op line says more
    short = next((ln for ln in lines if op and op in ln), lines[0] if lines else type(e).__name__)
    return LoadFailure(f"{type(e).__name__}: {short[:240]}", op)


class Loaded:
    """A model loaded in one runtime."""

    fixed_batch: int | None = None  # a model built for one batch size runs only that one

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def bind(self, x: np.ndarray) -> Callable[[], object]:
        """A zero-argument callable running `x`, for `measure.latency.measure_callables`."""
        return lambda: self.run(x)

    def predict(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """Logits of every row of `x`, in batches (padded to the model's fixed batch, if any)."""
        b = self.fixed_batch or batch
        outs = []
        for i in range(0, len(x), b):
            part = x[i : i + b]
            rows = len(part)
            if self.fixed_batch and rows < b:
                part = np.concatenate([part, np.repeat(x[:1], b - rows, axis=0)])
            outs.append(np.asarray(self.run(np.ascontiguousarray(part)))[:rows])
        return np.concatenate(outs)


class Runtime:
    """A runtime: its name as `runtimes:` spells it, how to install it, how to load a model."""

    name: str = ""
    install: str = ""  # what to run when it is missing
    in_process: bool = True

    def missing(self) -> str | None:
        """None when the runtime can be used here, else why not (one line)."""
        return None

    def version(self) -> str | None:
        return None

    def load(self, path: Path, threads: int) -> Loaded | LoadFailure:  # pragma: no cover
        raise NotImplementedError

    def measure_external(self, paths: dict[str, Path], x_test: np.ndarray,
                         batch_sizes: list[int], timing: dict) -> dict:  # pragma: no cover
        """Out-of-process runtimes: {name: LoadFailure | {"logits", "times_ms": {batch: [...]}}}."""
        raise NotImplementedError

    def require(self) -> None:
        why = self.missing()
        if why:
            raise RuntimeMissing(f"runtime {self.name} is not usable here ({why}); {self.install}")
