"""Stage `qat`: quantization-aware fine-tuning, for when post-training quantization cannot meet
the accuracy budget. Batch norm is folded, fake quantization matching ORT's int8 scheme is
inserted, the model is fine-tuned (distilling from the teacher when given), then exported and
quantized by ORT into the same QDQ ONNX the `quantize` stage produces.

Consumes a checkpoint (and optionally a teacher checkpoint); produces the int8 `model.onnx` and
`qat.json` (per-epoch history, accuracy before and after).
"""

from __future__ import annotations

import shutil
from typing import Literal

from pydantic import Field, model_validator

from compress import artifacts
from compress.measure import ort as ort_measure
from compress.onnx.contract import (
    accuracy_entry,
    contract_metadata,
    export_onnx,
    set_metadata,
    write_contract_json,
)
from compress.onnx.inspection import int8_weight_fraction
from compress.onnx.mobile import (
    TargetOptions,
    cpu_target_metrics,
    finish_mobile,
    fixed_shape,
    target_metric_names,
)
from compress.onnx.quantization import (
    CalibrationConfig,
    Quantizer,
    Setting,
    calibration_sample,
    preprocess,
)
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage, source_of
from compress.trainer.options import DistillOptions, TrainOptions


class QatConfig(StageConfig, TrainOptions, DistillOptions, TargetOptions):
    stage: Literal["qat"] = "qat"
    input: str = Field(description="id of the stage whose checkpoint is fine-tuned")
    teacher: str | None = Field(None, description="checkpoint to distill from; null = labels")
    epochs: int = Field(5, ge=1, le=10_000, description="fine-tuning epochs with fake quant")
    lr: float = Field(2e-4, gt=0, le=10, description="peak learning rate (small: fine-tuning)")
    activation_type: Literal["uint8", "int8"] = Field("uint8", description="int8 activations")
    format: Literal["qdq", "qoperator"] = Field("qdq", description="ONNX quantization format")
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    opset: int = Field(18, ge=18, le=23, description="ONNX opset of the export")

    references = {"input": {"checkpoint"}, "teacher": {"checkpoint"}}

    @model_validator(mode="after")
    def _fits_target(self):
        if self.target == "mobile" and (self.activation_type, self.format) != ("uint8", "qdq"):
            raise ValueError("target: mobile needs activation_type: uint8 and format: qdq (what "
                             "NNAPI runs), not "
                             f"{self.activation_type} / {self.format}")
        return self


METRICS = ("test_accuracy_pct", "val_accuracy_pct", "input_test_accuracy_pct",
           "fake_quant_test_accuracy_pct", "setting", "best_epoch", "train_wall_time_s",
           "train_cpu_time_s",
           "accuracy_change_pts", "int8_weight_fraction", "size_bytes")


@register_stage(QatConfig, produces="onnx",
                metrics=lambda cfg: METRICS + target_metric_names(cfg))
def qat(cfg: QatConfig, ctx: StageContext) -> StageResult:
    import torch

    from compress.trainer import fakequant
    from compress.trainer.distillation import Distiller, load_model
    from compress.trainer.training import accuracy_pct, fit, predict_logits, resolve_device

    data = ctx.dataset()
    src = ctx.inputs[cfg.input]
    shape = fixed_shape(cfg, data.input_shape, ctx.stage_id) if cfg.target == "mobile" else None
    model, ckpt = load_model(src.path, data.input_shape)
    device = resolve_device(cfg.device)
    before = accuracy_pct(predict_logits(model, data.x_test, device), data.y_test)

    fused = fakequant.fold_batch_norm(model.cpu())
    handles = fakequant.prepare(fused, cfg.activation_type)
    desc = f"{ctx.stage_id} (qat)"
    if cfg.teacher is not None:
        teacher, _ = load_model(ctx.inputs[cfg.teacher].path, data.input_shape,
                                role="teacher checkpoint")
        distiller = Distiller(fused, teacher, torch.as_tensor(data.x_train[:2]), cfg,
                              label_smoothing=cfg.label_smoothing)
        result = fit(distiller, data, cfg, loss_fn=distiller.loss, progress=ctx.progress,
                     desc=desc)
    else:
        result = fit(fused, data, cfg, progress=ctx.progress, desc=desc)
    fake_acc = accuracy_pct(predict_logits(fused, data.x_test, device), data.y_test)
    fakequant.finalize(fused.cpu().eval(), handles)

    work = ctx.out_dir / "work"
    work.mkdir()
    export_onnx(fused, torch.as_tensor(data.x_test[:2]), work / "fp32.onnx", cfg.opset)
    preprocess(work / "fp32.onnx", work / "float.onnx")
    fp32_session = ort_measure.make_session(work / "float.onnx", 1)
    input_name = fp32_session.get_inputs()[0].name
    quantizer = Quantizer(work / "float.onnx", work, cfg.calibration,
                          calibration_sample(data.x_train, cfg.calibration), input_name)
    out = ctx.out_dir / "model.onnx"
    target_meta = None
    if shape is not None:  # per-channel weights on Conv only: NNAPI's FULLY_CONNECTED has none
        setting = Setting("static", "uint8", "qdq", per_channel_ops=("Conv",), tag="convpc")
        target, target_meta = finish_mobile(quantizer.quantize(setting, work / "int8.onnx"), out,
                                            shape, data.x_test, ctx.stage_id)
    else:
        setting = Setting("static", cfg.activation_type, cfg.format)
        shutil.copyfile(quantizer.quantize(setting, work / "int8.onnx"), out)
        target = cpu_target_metrics(out)

    session = ort_measure.make_session(out, 1)
    metrics = {
        "test_accuracy_pct": ort_measure.accuracy_pct(ort_measure.predict(session, data.x_test),
                                                      data.y_test),
        "val_accuracy_pct": ort_measure.accuracy_pct(ort_measure.predict(session, data.x_val),
                                                     data.y_val),
        "input_test_accuracy_pct": before,
        "fake_quant_test_accuracy_pct": fake_acc,
        "setting": setting.name,
        "best_epoch": result.best_epoch,
        "train_wall_time_s": round(result.wall_time_s, 3),
        "train_cpu_time_s": round(result.cpu_time_s, 3),
    }
    metrics["accuracy_change_pts"] = round(metrics["test_accuracy_pct"] - before, 4)
    metrics["int8_weight_fraction"] = round(int8_weight_fraction(out), 4)
    metrics.update(target)
    del session
    meta_metrics = accuracy_entry(metrics, metrics["test_accuracy_pct"], len(data.y_test))
    meta = contract_metadata(ckpt, data, meta_metrics, source_of(
        ctx, src, checkpoint_sha256=src.sha256)) | {
        "compress.quantization": {"setting": setting.name, "mode": "qat",
                                  "calibration": cfg.calibration.model_dump(mode="json")}}
    if target_meta:
        meta["compress.target"] = target_meta
        meta["compress.input"] = {**meta["compress.input"], "shape": shape}
    set_metadata(out, meta)
    write_contract_json(out)
    metrics["size_bytes"] = out.stat().st_size
    artifacts.write_json(ctx.out_dir / "qat.json", {"history": result.history,
                                                    "metrics": metrics})
    shutil.rmtree(work)
    return StageResult(primary="model.onnx", metrics=metrics)
