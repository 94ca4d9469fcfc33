"""Stage `convert`: an ONNX model -> ORT format, for onnxruntime's mobile and reduced builds.

Consumes an ONNX model (an `export`, `quantize` or `qat` stage); produces `model.ort`, written
by onnxruntime's own converter (`onnxruntime.tools.convert_onnx_models_to_ort`), and
`model.required_operators.config`, the operator list to build a reduced runtime with
(`build.sh --include_ops_by_config`). The .ort must predict exactly what the .onnx predicts on
the test split, else StageError. `target: mobile` fixes the input shape first (parity checked),
refuses contrib ops, converts with runtime optimizations and records the mobile EPs' coverage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.onnx.external import model_size_bytes
from compress.onnx.mobile import (
    TargetOptions,
    cpu_target_metrics,
    finish_mobile,
    fixed_shape,
    target_metric_names,
)
from compress.onnx.ortformat import compare_predictions, convert_to_ort
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage, source_of

METRICS = ("test_accuracy_pct", "onnx_test_accuracy_pct", "identical_predictions",
           "max_abs_diff", "size_bytes", "onnx_size_bytes")


class ConvertConfig(StageConfig, TargetOptions):
    stage: Literal["convert"] = "convert"
    input: str = Field(description="id of the stage whose ONNX model is converted")
    format: Literal["ort"] = Field("ort", description="target format: ort (ONNX Runtime's "
                                   "flatbuffer format for mobile and reduced builds)")

    references = {"input": {"onnx"}}


@register_stage(ConvertConfig, produces="ort",
                metrics=lambda cfg: METRICS + target_metric_names(cfg))
def convert(cfg: ConvertConfig, ctx: StageContext) -> StageResult:
    src = ctx.inputs[cfg.input]
    data = ctx.dataset()
    ort_measure.check_input_shape(ort_measure.make_session(src.path, 1), data.input_shape,
                                  src.path)

    source = source_of(ctx, src, onnx_sha256=src.sha256)
    if cfg.target == "mobile":
        shape = fixed_shape(cfg, data.input_shape, ctx.stage_id)
        with tempfile.TemporaryDirectory(dir=ctx.out_dir, prefix=".fixed-") as tmp:
            fixed = Path(tmp) / "model.onnx"
            target, target_meta = finish_mobile(src.path, fixed, shape, data.x_test,
                                                ctx.stage_id, given=True)
            meta = {"compress.target": target_meta,
                    "compress.input": {**(ort_measure.read_metadata(fixed)
                                          .get("compress.input") or {}), "shape": shape}}
            ort_path, _ = convert_to_ort(fixed, ctx.out_dir, source, runtime_optimizations=True,
                                         extra_meta=meta)
            metrics = compare_predictions(fixed, ort_path, data.x_test, data.y_test)
    else:
        ort_path, _ = convert_to_ort(src.path, ctx.out_dir, source)
        metrics = compare_predictions(src.path, ort_path, data.x_test, data.y_test)
        target = cpu_target_metrics(src.path)
    if not metrics["identical_predictions"]:
        raise StageError(f"{ort_path}: the ORT-format model predicts differently from "
                         f"{src.path} on the test split (max |diff| of logits "
                         f"{metrics['max_abs_diff']:.3g}); keep shipping the .onnx")
    metrics["size_bytes"] = ort_path.stat().st_size
    metrics["onnx_size_bytes"] = model_size_bytes(src.path)
    return StageResult(primary="model.ort", metrics={**metrics, **target})
