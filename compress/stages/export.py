"""Stage `export`: checkpoint -> ONNX (pinned opset, dynamic batch), checked, with parity.

Consumes a checkpoint; produces `model.onnx` whose outputs match PyTorch's on test inputs within
the stated tolerance (else ParityError with the largest difference), whose test accuracy was
measured in ONNX Runtime, and whose `metadata_props` describe its contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from compress import artifacts
from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.models import count_params
from compress.onnx.contract import (
    INPUT_NAME,
    accuracy_entry,
    check_parity,
    contract_metadata,
    export_onnx,
    set_metadata,
    write_contract_json,
)
from compress.onnx.external import model_size_bytes
from compress.onnx.mobile import (
    MOBILE_MAX_OPSET,
    TargetOptions,
    finish_mobile,
    fixed_shape,
    target_metric_names,
)
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage, source_of

if TYPE_CHECKING:  # torch is imported when a stage runs, not when the command line starts
    import torch

METRICS = ("ort_test_accuracy_pct", "torch_test_accuracy_pct", "parity_max_abs_diff",
           "parity_samples", "params", "opset", "size_bytes")


class ExportConfig(StageConfig, TargetOptions):
    stage: Literal["export"] = "export"
    input: str = Field(description="id of the stage whose checkpoint is exported")
    opset: int = Field(18, ge=18, le=23, description="ONNX opset (the exporter needs >= 18)")
    atol: float = Field(1e-4, gt=0, description="parity: absolute tolerance on logits")
    rtol: float = Field(1e-3, ge=0, description="parity: relative tolerance on logits")
    parity_samples: int = Field(512, ge=1, description="test samples compared with PyTorch")
    external_data: bool = Field(
        False, description="weights in model.onnx.data beside model.onnx, as exporters write "
        "models over 2 GB; sizes, hashes, verify and the README cover both files")

    references = {"input": {"checkpoint"}}

    @model_validator(mode="after")
    def _mobile_opset(self):
        if self.target == "mobile" and self.opset > MOBILE_MAX_OPSET:
            raise ValueError(f"target: mobile needs opset <= {MOBILE_MAX_OPSET} (what the "
                             f"onnxruntime mobile packages load), not {self.opset}")
        return self



def export_model(model: torch.nn.Module, data, cfg: ExportConfig, out: Path, described: dict,
                 source: dict) -> dict:
    """Export `model` to `out` (ONNX), check it, check parity with PyTorch at two batch sizes,
    measure its accuracy in ORT and stamp the contract metadata; its metrics. `described` holds
    what the metadata says of the model (preprocessing, class labels, data, model spec). The
    stage and `compress.export` both run this."""
    import onnx
    import torch

    model = model.cpu().eval()
    export_onnx(model, torch.as_tensor(data.x_test[:2]), out, cfg.opset, cfg.external_data)
    try:
        onnx.checker.check_model(str(out), full_check=True)
    except onnx.checker.ValidationError as e:
        raise StageError(f"exported model fails onnx.checker: {str(e).splitlines()[0]}") from e

    session = ort_measure.make_session(out, threads=0)
    x_par = data.x_test[: cfg.parity_samples]
    with torch.no_grad():
        torch_logits = model(torch.as_tensor(x_par)).numpy()
    max_diff = check_parity(torch_logits, ort_measure.predict(session, x_par), cfg.atol, cfg.rtol)
    # The batch axis must really be dynamic: batch 1 must agree too.
    check_parity(torch_logits[:1], session.run(None, {INPUT_NAME: x_par[:1]})[0], cfg.atol,
                 cfg.rtol)

    with torch.no_grad():
        torch_acc = ort_measure.accuracy_pct(model(torch.as_tensor(data.x_test)).numpy(),
                                             data.y_test)
    ort_acc = ort_measure.accuracy_pct(ort_measure.predict(session, data.x_test), data.y_test)
    del session
    metrics = {
        "ort_test_accuracy_pct": ort_acc,
        "torch_test_accuracy_pct": torch_acc,
        "parity_max_abs_diff": max_diff,
        "parity_samples": len(x_par),
        "params": count_params(model),
        "opset": cfg.opset,
    }
    set_metadata(out, contract_metadata(
        described, data, accuracy_entry(metrics, ort_acc, len(data.y_test)), source))
    if cfg.target == "mobile":
        shape = fixed_shape(cfg, data.input_shape, source.get("stage", "export"))
        dynamic = out.with_name("dynamic.onnx")  # removed below: the fixed model is the artifact
        out.replace(dynamic)
        target, target_meta = finish_mobile(dynamic, out, shape, data.x_test,
                                            source.get("stage", "export"))
        dynamic.unlink()
        metrics.update(target)
        meta = ort_measure.read_metadata(out)
        meta["compress.target"] = target_meta
        meta["compress.input"] = {**meta["compress.input"], "shape": shape}
        set_metadata(out, meta)
    write_contract_json(out)
    metrics["size_bytes"] = model_size_bytes(out)
    return metrics


def _metric_names(cfg: ExportConfig) -> tuple[str, ...]:
    # A cpu export records no target metrics: the teacher's export is the baseline, not a build.
    return METRICS + (target_metric_names(cfg) if cfg.target == "mobile" else ())


@register_stage(ExportConfig, produces="onnx", metrics=_metric_names)
def export(cfg: ExportConfig, ctx: StageContext) -> StageResult:
    from compress.models.checkpoint import model_from_checkpoint

    src = ctx.inputs[cfg.input]
    ckpt = artifacts.load_checkpoint(src.path)
    model = model_from_checkpoint(ckpt, src.path)
    data = ctx.dataset()
    if list(data.input_shape) != list(ckpt["input_shape"]):
        raise StageError(
            f"checkpoint {src.path} expects inputs {ckpt['input_shape']} but the data gives "
            f"{data.input_shape}; export it with the data it was trained on"
        )
    if cfg.target == "mobile":  # a shape that does not fit the data: refused before exporting
        fixed_shape(cfg, data.input_shape, ctx.stage_id)
    metrics = export_model(model, data, cfg, ctx.out_dir / "model.onnx", ckpt,
                           source_of(ctx, src, checkpoint_sha256=src.sha256))
    return StageResult(primary="model.onnx", metrics=metrics)
