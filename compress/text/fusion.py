"""The graph an optimum user runs: ONNX Runtime's transformer optimizer
(`onnxruntime.transformers.optimizer`, model_type bert) on a TorchScript export.

The optimizer's fusions (EmbedLayerNormalization, Attention, SkipLayerNormalization,
BiasGelu/FastGelu) match the op patterns of the TorchScript exporter, which optimum uses; on our
torch.export (dynamo) graph they found only the 6 BiasGelu of MiniLM (no Attention, no
SkipLayerNormalization: measured with onnxruntime 1.32), so this candidate is exported the
TorchScript way. `embed_export` times it beside its own graphs and keeps the fastest;
`embed_quantize` quantizes every graph it kept.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from compress.errors import StageError

FUSED_OPS = ("EmbedLayerNormalization", "Attention", "MultiHeadAttention",
             "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu")
# The TorchScript exporter's newest well-trodden opset for BERT (optimum's default is 14..17).
if TYPE_CHECKING:  # torch is imported when exporting, not when the command line starts
    import torch

TORCHSCRIPT_OPSET = 17


def ort_fused_export(model: torch.nn.Module, path: Path, input_names: tuple[str, str],
                     output_name: str) -> dict[str, int]:
    """Write `model` to `path` as TorchScript export + ORT's BERT fusions; returns how many
    nodes of each fused op type the graph holds (0 everywhere: nothing fused)."""
    import torch
    from onnxruntime.transformers import optimizer

    config = model.bert.config
    raw = path.with_suffix(".torchscript.onnx")
    ids = torch.full((2, 8), 101, dtype=torch.int64)
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes[output_name] = {0: "batch"}
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (ids, torch.ones_like(ids)), str(raw),
                              input_names=list(input_names), output_names=[output_name],
                              opset_version=TORCHSCRIPT_OPSET, dynamo=False, dynamic_axes=axes)
            # opt_level 0: the optimizer's own (Python) fusions only; ORT applies its usual
            # graph optimisations when a session loads the file, as for every other graph.
            fused = optimizer.optimize_model(
                str(raw), model_type="bert", num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size, opt_level=0)
            fused.save_model_to_file(str(path))
            stats = fused.get_fused_operator_statistics()
    except Exception as e:  # the exporter and the optimizer raise many plain types
        raise StageError(f"ORT transformer optimizer graph failed ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:300] if str(e) else ''})") from e
    finally:
        raw.unlink(missing_ok=True)
    return {op: int(stats.get(op, 0)) for op in FUSED_OPS}


def fused_ops_text(counts: dict[str, int]) -> str:
    """'Attention 6, SkipLayerNormalization 12' (or 'none')."""
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"
