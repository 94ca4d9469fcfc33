"""Load a model in every runtime installed here and check that each predicts the test split as
Python onnxruntime does: the build-time check of `target: portable`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from compress.errors import StageError
from compress.measure.runtimes import get_runtime
from compress.measure.runtimes.base import LoadFailure
from compress.measure.runtimes.reference import OnnxReference

CHECKED = ("onnxruntime", "openvino")  # in-process; onnxruntime-web is measured by bench


def check_in_runtimes(path: Path, x: np.ndarray, stage_id: str) -> dict:
    """{runtime: {version, agree, samples}} for onnxruntime, OpenVINO (when installed) and onnx's
    reference evaluator; StageError naming the runtime when one cannot load the file. A
    prediction that differs from onnxruntime's (int8 rounding near a tie) is a warning and a
    metric (`portable_runtimes_agree_pct`, gateable), not an error."""
    runtimes = [get_runtime(n) for n in CHECKED] + [OnnxReference()]
    ref = None
    out: dict = {}
    for rt in runtimes:
        if rt.missing():
            out[rt.name] = {"checked": False, "why": rt.missing(), "install": rt.install}
            continue
        loaded = rt.load(path, 1)
        if isinstance(loaded, LoadFailure):
            raise StageError(f"stage '{stage_id}': {rt.name} cannot load the portable build "
                             f"{path} ({loaded.error}); report it with the file attached")
        pred = loaded.predict(x, batch=64).argmax(1)
        ref = pred if ref is None else ref
        agree = int((pred == ref).sum())
        if agree != len(x):
            print(f"warning: stage '{stage_id}': {rt.name} predicts {len(x) - agree} of "
                  f"{len(x)} test samples differently from onnxruntime with {path}",
                  file=sys.stderr)
        out[rt.name] = {"checked": True, "version": rt.version(), "agree": agree,
                        "samples": int(len(x))}
    return out
