"""Stage `convert`: an ONNX model -> ORT format, for onnxruntime's mobile and reduced builds.

Consumes an ONNX model (an `export`, `quantize` or `qat` stage); produces `model.ort`, written
by onnxruntime's own converter (`onnxruntime.tools.convert_onnx_models_to_ort`), and
`model.required_operators.config`, the operator list to build a reduced runtime with
(`build.sh --include_ops_by_config`). The .ort must predict exactly what the .onnx predicts on
the test split, else StageError.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.onnx.external import model_size_bytes
from compress.onnx.ortformat import compare_predictions, convert_to_ort
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage

METRICS = ("test_accuracy_pct", "onnx_test_accuracy_pct", "identical_predictions",
           "max_abs_diff", "size_bytes", "onnx_size_bytes")


class ConvertConfig(StageConfig):
    stage: Literal["convert"] = "convert"
    input: str = Field(description="id of the stage whose ONNX model is converted")
    format: Literal["ort"] = Field("ort", description="target format: ort (ONNX Runtime's "
                                   "flatbuffer format for mobile and reduced builds)")

    references = {"input": {"onnx"}}



@register_stage(ConvertConfig, produces="ort", metrics=lambda cfg: METRICS)
def convert(cfg: ConvertConfig, ctx: StageContext) -> StageResult:
    src = ctx.inputs[cfg.input]
    data = ctx.dataset()
    ort_measure.check_input_shape(ort_measure.make_session(src.path, 1), data.input_shape,
                                  src.path)
    from compress.onnx.contract import source_of

    ort_path, _ = convert_to_ort(src.path, ctx.out_dir,
                                 source_of(ctx, src, onnx_sha256=src.sha256))
    metrics = compare_predictions(src.path, ort_path, data.x_test, data.y_test)
    if not metrics["identical_predictions"]:
        raise StageError(f"{ort_path}: the ORT-format model predicts differently from "
                         f"{src.path} on the test split (max |diff| of logits "
                         f"{metrics['max_abs_diff']:.3g}); keep shipping the .onnx")
    metrics["size_bytes"] = ort_path.stat().st_size
    metrics["onnx_size_bytes"] = model_size_bytes(src.path)
    return StageResult(primary="model.ort", metrics=metrics)
