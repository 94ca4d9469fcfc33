"""OpenVINO (CPU plugin) as a runtime of `bench`'s `runtimes:`; an optional extra:
`pip install 'compress[openvino]'`. It reads the .onnx directly (its ONNX frontend); contrib
ops (com.microsoft QGemm, QLinearAdd...) have no conversion rule, so a cpu-target int8 build
fails to load and the table says which op."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.measure.runtimes.base import Loaded, LoadFailure, Runtime, failure


class OpenvinoLoaded(Loaded):
    def __init__(self, compiled, fixed_batch: int | None):
        self.request = compiled.create_infer_request()
        self.fixed_batch = fixed_batch

    def run(self, x: np.ndarray) -> np.ndarray:
        # share_inputs: no copy of x into OpenVINO's tensor; the output is copied out
        return np.array(self.request.infer({0: x}, share_inputs=True)[0])

    def bind(self, x: np.ndarray):
        infer, feed = self.request.infer, {0: x}
        return lambda: infer(feed, share_inputs=True, share_outputs=True)


class Openvino(Runtime):
    name = "openvino"
    install = "pip install 'compress[openvino]'"

    def missing(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("openvino") else "the openvino package is missing"

    def version(self) -> str | None:
        import openvino

        return openvino.__version__.split("-")[0]

    def load(self, path: Path, threads: int) -> Loaded | LoadFailure:
        import openvino as ov

        core = ov.Core()
        # LATENCY: one stream, the request runs alone, as an app's single inference call does;
        # threads 0 = OpenVINO's default (every core)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
            dim = model.inputs[0].get_partial_shape()[0]
            fixed = dim.get_length() if dim.is_static else None
            return OpenvinoLoaded(core.compile_model(model, "CPU", config), fixed)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own
            return failure(e)
