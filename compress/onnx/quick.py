"""A quick ONNX export for graphs that are only timed and scored, never shipped (the search's
trial graphs): TorchScript tracing takes ~1 s where the torch.export-based exporter of
`contract.export_onnx` takes ~9 s on a loaded 2-core machine, and after ORT's graph
optimisations both run the same kernels. Shipped models go through `contract.export_onnx`."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

from compress.errors import StageError
from compress.onnx.contract import INPUT_NAME, OUTPUT_NAME


def quick_export(model, example, path: Path, opset: int = 18) -> None:
    import torch

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset, dynamo=False,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    except Exception as e:
        raise StageError(f"quick ONNX export failed ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:300]})") from e
