"""onnx's reference evaluator (`onnx.reference.ReferenceEvaluator`, numpy) as a runtime: the
spec's own semantics. Too slow to time; used to check that a portable build runs as the ONNX
standard says (`check.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.measure.runtimes.base import Loaded, LoadFailure, Runtime, failure


class ReferenceLoaded(Loaded):
    def __init__(self, evaluator, input_name: str, fixed_batch: int | None):
        self.evaluator, self.input, self.fixed_batch = evaluator, input_name, fixed_batch

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.evaluator.run(None, {self.input: x})[0]


class OnnxReference(Runtime):
    name = "onnx-reference"
    install = "pip install onnx"

    def version(self) -> str | None:
        import onnx

        return onnx.__version__

    def load(self, path: Path, threads: int) -> Loaded | LoadFailure:
        import onnx
        from onnx.reference import ReferenceEvaluator

        try:
            model = onnx.load(str(path))
            dim = model.graph.input[0].type.tensor_type.shape.dim
            fixed = dim[0].dim_value if dim and dim[0].HasField("dim_value") else None
            evaluator = ReferenceEvaluator(model)
            return ReferenceLoaded(evaluator, model.graph.input[0].name, fixed)
        except Exception as e:  # onnx raises its own types
            return failure(e)
