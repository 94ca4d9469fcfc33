"""Export time of a trial graph: TorchScript tracing (compress.onnx.quick, the search's trial
graphs) against the torch.export-based exporter (compress.onnx.contract, shipped models), on a
width-32, two-stage resnet for 8x8 digits; each twice, the second run is the steady figure.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/quick_export.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from compress.models import build_model
from compress.onnx.contract import export_onnx
from compress.onnx.quick import quick_export

model = build_model({"arch": "resnet", "width": 32, "stages": 2}, [1, 8, 8], 10).eval()
x = torch.zeros(2, 1, 8, 8)
with tempfile.TemporaryDirectory() as tmp:
    for name, fn in (("torchscript", quick_export), ("torch.export", export_onnx)):
        for run in (1, 2):
            t0 = time.perf_counter()
            fn(model, x, Path(tmp) / f"{name}.onnx", 18)
            print(f"{name} run {run}: {time.perf_counter() - t0:.2f} s")
