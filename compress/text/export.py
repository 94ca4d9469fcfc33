"""A sentence encoder (compress.text.encoder's wrapper) to ONNX with torch.export: inputs
`input_ids` and `attention_mask` (int64, batch x sequence, both axes dynamic), output
`sentence_embedding`. The `embed_export` stage and benchmarks/minilm_students.py both run it."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from compress.errors import StageError

if TYPE_CHECKING:  # torch is imported when exporting, not when the command line starts
    import torch

INPUTS, OUTPUT = ("input_ids", "attention_mask"), "sentence_embedding"


def export_encoder(model: torch.nn.Module, path: Path, opset: int, max_length: int) -> None:
    """torch.export-based exporter; batch and sequence axes dynamic; one self-contained file."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    seq = torch.export.Dim("sequence", min=2, max=max_length)
    ids = torch.full((2, 8), 101, dtype=torch.int64)
    mask = torch.ones_like(ids)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (ids, mask), input_names=list(INPUTS), output_names=[OUTPUT],
                opset_version=opset, dynamo=True, external_data=False, verbose=False,
                report=False, dynamic_shapes={n: {0: batch, 1: seq} for n in INPUTS})
            program.save(str(path), external_data=False)
    except Exception as e:
        raise StageError(f"export failed in torch.onnx ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:300]})") from e
