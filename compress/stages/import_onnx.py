"""Stage `import`: bring an ONNX model made elsewhere into a pipeline, checked.

Consumes a file path (`onnx:`, relative to the pipeline file); produces `model.onnx`, the same
graph with the contract metadata ours carry (the source file's sha256 among it), usable by
quantize, bench, distill (as teacher) and gates like an exported model; metrics include its
test accuracy in ONNX Runtime on this pipeline's data.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from compress import artifacts
from compress.measure import ort as ort_measure
from compress.onnx.contract import accuracy_entry, set_metadata
from compress.onnx.foreign import check_foreign_onnx, file_sha256
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage

METRICS = ("test_accuracy_pct", "test_samples", "source_sha256", "size_bytes", "source_size_bytes",
           "opset", "params")


class ImportConfig(StageConfig):
    stage: Literal["import"] = "import"
    onnx: str = Field(description="the ONNX model file; relative paths start at the pipeline file")

    def check_files(self, data) -> None:
        check_foreign_onnx(self.onnx, data, "onnx")

    def hash_payload(self) -> dict:
        return {**super().hash_payload(), "onnx_sha256": file_sha256(self.onnx)}


@register_stage(ImportConfig, produces="onnx", metrics=lambda cfg: METRICS)
def import_onnx(cfg: ImportConfig, ctx: StageContext) -> StageResult:
    from compress.onnx.inspection import inspect_file

    data = ctx.dataset()
    src = Path(cfg.onnx)
    info = check_foreign_onnx(src, data, "onnx")
    sha = artifacts.sha256_file(src)
    out = ctx.out_dir / "model.onnx"
    with artifacts.atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)
    session = ort_measure.make_session(out, threads=0)
    acc = ort_measure.accuracy_pct(ort_measure.predict(session, data.x_test), data.y_test)
    del session
    metrics = {"test_accuracy_pct": acc, "test_samples": len(data.y_test),
               "source_sha256": sha, "source_size_bytes": src.stat().st_size,
               "opset": info["opset"], "params": int(inspect_file(out)["params"])}
    set_metadata(out, {
        "compress.input": {"name": info["input_name"], "shape": info["input_shape"],
                           "dtype": "float32"},
        "compress.output": {"name": info["output_name"], "shape": ["batch", data.num_classes],
                            "meaning": "class logits (argmax = prediction)"},
        "compress.preprocessing": data.preprocessing(),
        "compress.class_labels": data.class_labels,
        "compress.data": ctx.data_cfg.model_dump(mode="json"),
        "compress.metrics": accuracy_entry(metrics, acc, len(data.y_test)),
        "compress.source": {"pipeline": ctx.pipeline, "stage": ctx.stage_id,
                            "cache_key": ctx.cache_key, "imported_from": src.name,
                            "imported_sha256": sha, "producer": info["producer"]},
    })
    metrics["size_bytes"] = out.stat().st_size
    return StageResult(primary="model.onnx", metrics=metrics)
