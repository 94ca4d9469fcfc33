"""Stage `distill`: train a small student from a teacher checkpoint (Hinton distillation, optional
hint layer), and the same student without the teacher (same seed, same epochs), so the gain from
distillation is measured rather than assumed.

Consumes a teacher checkpoint; produces the student's `model.pt`, `history.json` (per-epoch
figures with and without the teacher) and metrics with both test accuracies.
"""

from __future__ import annotations

import sys
from typing import Literal

from pydantic import Field

from compress import artifacts
from compress.models import ModelSpec, ResNetSpec
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import FIT_METRICS as TRAIN_METRICS
from compress.trainer.options import DistillOptions, HintConfig, TrainOptions


class DistillConfig(StageConfig, TrainOptions, DistillOptions):
    stage: Literal["distill"] = "distill"
    teacher: str = Field(description="id of the stage whose checkpoint teaches")
    model: ModelSpec = Field(
        default_factory=lambda: ResNetSpec(width=8, stages=2), description="student architecture"
    )
    hint: HintConfig | None = Field(None, description="optional feature distillation")
    compare_without_teacher: bool = Field(
        True, description="also train the student on labels alone (same seed and epochs) and "
        "report the difference; doubles the stage's training time"
    )

    references = {"teacher": {"checkpoint"}}


def metric_names(cfg: DistillConfig) -> tuple[str, ...]:
    names = (*TRAIN_METRICS, "teacher_test_accuracy_pct", "teacher_params",
             "compression_params_x", "temperature", "alpha", "warning")
    if cfg.compare_without_teacher:
        names += ("without_teacher_test_accuracy_pct", "without_teacher_val_accuracy_pct",
                  "distillation_gain_pts")
    return names


@register_stage(DistillConfig, produces="checkpoint", metrics=metric_names)
def distill(cfg: DistillConfig, ctx: StageContext) -> StageResult:
    import torch

    from compress.models import build_model, count_params
    from compress.models.checkpoint import checkpoint_payload
    from compress.trainer.distillation import Distiller, load_model
    from compress.trainer.training import (
        accuracy_pct,
        fit,
        fit_metrics,
        predict_logits,
        resolve_device,
        seed_everything,
    )

    data = ctx.dataset()
    teacher_art = ctx.inputs[cfg.teacher]
    teacher, _ = load_model(teacher_art.path, data.input_shape, role="teacher checkpoint")
    device = resolve_device(cfg.device)
    teacher_acc = accuracy_pct(predict_logits(teacher.to(device), data.x_test, device),
                               data.y_test)

    seed_everything(cfg.seed)
    student = build_model(cfg.model, data.input_shape, data.num_classes)
    warning = _larger_student(count_params(student), count_params(teacher))
    if warning:
        print(f"warning: {ctx.stage_id}: {warning}", file=sys.stderr, flush=True)
    distiller = Distiller(student, teacher, torch.as_tensor(data.x_train[:2]), cfg, cfg.hint,
                          cfg.label_smoothing)
    result = fit(distiller, data, cfg, loss_fn=distiller.loss, progress=ctx.progress,
                 desc=f"{ctx.stage_id} (distill)")
    metrics = fit_metrics(student, data, result, who=ctx.stage_id)
    metrics.update({
        "teacher_test_accuracy_pct": teacher_acc,
        "teacher_params": count_params(teacher),
        "compression_params_x": round(count_params(teacher) / count_params(student), 2),
        "temperature": cfg.temperature,
        "alpha": cfg.alpha,
        "warning": warning,  # also in the report; None when there is nothing to say
    })
    history = {"distilled": result.history}

    if cfg.compare_without_teacher:
        seed_everything(cfg.seed)
        alone = build_model(cfg.model, data.input_shape, data.num_classes)
        alone_result = fit(alone, data, cfg, progress=ctx.progress,
                           desc=f"{ctx.stage_id} (no teacher)")
        alone_acc = accuracy_pct(predict_logits(alone, data.x_test, device), data.y_test)
        metrics["without_teacher_test_accuracy_pct"] = alone_acc
        metrics["without_teacher_val_accuracy_pct"] = alone_result.best_val_accuracy_pct
        metrics["distillation_gain_pts"] = round(metrics["test_accuracy_pct"] - alone_acc, 4)
        metrics["train_wall_time_s"] = round(result.wall_time_s + alone_result.wall_time_s, 3)
        metrics["train_cpu_time_s"] = round(result.cpu_time_s + alone_result.cpu_time_s, 3)
        history["without_teacher"] = alone_result.history

    student.cpu()
    payload = checkpoint_payload(student, cfg.model, data, ctx.data_cfg, cfg, metrics)
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "history.json", history)
    return StageResult(primary="model.pt", metrics=metrics)


def _larger_student(student_params: int, teacher_params: int) -> str | None:
    if student_params <= teacher_params:
        return None
    return (f"the student has {student_params:,} parameters, more than its teacher's "
            f"{teacher_params:,}: distilling will not make the model smaller; give the student "
            "a smaller `model` (width, hidden sizes)")
