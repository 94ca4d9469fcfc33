"""onnxruntime (Python, CPUExecutionProvider) as a runtime of `bench`'s `runtimes:`: the
reference the others' predictions are compared with."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from compress.errors import ArtifactError
from compress.measure.runtimes.base import Loaded, LoadFailure, Runtime, failure


class OrtLoaded(Loaded):
    def __init__(self, session):
        self.session = session
        self.input = session.get_inputs()[0].name
        dim = session.get_inputs()[0].shape[0]
        self.fixed_batch = dim if isinstance(dim, int) else None

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]

    def bind(self, x: np.ndarray):
        # partial calls session.run from C: no Python frame inside the timed region
        return functools.partial(self.session.run, None, {self.input: x})


class Onnxruntime(Runtime):
    name = "onnxruntime"
    install = "pip install onnxruntime"

    def version(self) -> str | None:
        import onnxruntime

        return onnxruntime.__version__

    def load(self, path: Path, threads: int) -> Loaded | LoadFailure:
        from compress.measure.ort import make_session

        try:
            return OrtLoaded(make_session(path, threads))
        except ArtifactError as e:
            return failure(e.__cause__ or e)
