"""Stage `distill`: train a small student from a teacher (Hinton distillation, optional hint
layer), and the same student without the teacher (same seed, same epochs), so the gain from
distillation is measured rather than assumed. The teacher is a checkpoint, or an ONNX model
(an earlier stage's, or `teacher: {onnx: path}`) run in ONNX Runtime on the same batches.

Consumes a teacher; produces the student's `model.pt`, `history.json` (per-epoch figures with
and without the teacher) and metrics with both test accuracies.
"""

from __future__ import annotations

import copy
import sys
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator

from compress import artifacts
from compress.errors import DataError, StageError
from compress.models import ModelSpec, ResNetSpec, count_params
from compress.models.fields import weights_sha256
from compress.onnx.foreign import check_foreign_onnx, file_sha256
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import FIT_METRICS as TRAIN_METRICS
from compress.trainer.options import DistillOptions, HintConfig, TrainOptions

if TYPE_CHECKING:  # torch is imported when a stage runs, not when the command line starts
    from torch import nn


class OnnxTeacher(BaseModel):
    """A teacher that exists only as an ONNX file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    onnx: str = Field(description="ONNX model whose logits teach; relative paths start at the "
                      "pipeline file")


# The alpha that alpha: auto distils with before comparing against labels only (chosen from the
# table in docs/distillation.md).
AUTO_ALPHA = 0.5


def _alpha(value):
    """A weight in [0, 1] or "auto", with one clear message (a union's error lists both arms)."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("not a weight from 0 to 1 (0 = labels only) nor auto (distil, train on "
                         "labels alone, keep whichever is better on the validation split)")
    return float(value)


class DistillConfig(StageConfig, TrainOptions, DistillOptions):
    stage: Literal["distill"] = "distill"
    # Defaults from the table in docs/distillation.md (six data sets, brief student training):
    # T 1 hurt least there; the former T 4, alpha 0.9 cost up to 22 pts. prune's and qat's
    # fine-tuning (a trained student, not measured there) keep DistillOptions' T 4, alpha 0.9.
    temperature: float = Field(1.0, gt=0, le=100, description="softmax temperature T")
    alpha: Annotated[float | Literal["auto"], PlainValidator(_alpha)] = Field(
        "auto", description="weight of the soft (teacher) term, 1 - alpha goes to CE; auto = "
        f"distil with alpha {AUTO_ALPHA}, and keep the labels-only student (alpha 0) when it "
        "is better on the validation split (without compare_without_teacher: alpha "
        f"{AUTO_ALPHA})")
    teacher: str | OnnxTeacher = Field(
        description="id of the stage whose checkpoint or ONNX model teaches, or {onnx: path}")
    model: ModelSpec = Field(
        default_factory=lambda: ResNetSpec(width=8, stages=2), description="student architecture"
    )
    hint: HintConfig | None = Field(None, description="optional feature distillation")
    transfer: Literal["labeled", "unlabeled"] = Field(
        "labeled", description="the transfer set the teacher labels: labeled = the training "
        "split; unlabeled = it plus the data's unlabeled images (data.labels_per_class), on "
        "which only the teacher's soft labels count (Hinton et al.'s transfer set)")
    compare_without_teacher: bool = Field(
        True, description="also train the student on labels alone (same seed and epochs) and "
        "report the difference; doubles the stage's training time"
    )

    references = {"teacher": {"checkpoint", "onnx"}}

    @model_validator(mode="after")
    def _auto_needs_comparison(self):
        # Only when asked for: the default (auto) distils with AUTO_ALPHA when nothing compares.
        if (self.alpha == "auto" and "alpha" in self.model_fields_set
                and not self.compare_without_teacher):
            raise ValueError("alpha: auto chooses between the distilled and the labels-only "
                             "student, so it needs compare_without_teacher: true; or give alpha "
                             "a number")
        return self

    @model_validator(mode="after")
    def _hint_needs_torch(self):
        if self.hint is not None and isinstance(self.teacher, OnnxTeacher):
            raise ValueError("hint (feature) distillation needs a PyTorch teacher's layers; an "
                             "ONNX teacher gives logits only: drop `hint`")
        return self

    def referenced_ids(self) -> dict[str, list[str]]:
        return {"teacher": [self.teacher] if isinstance(self.teacher, str) else []}

    def check_files(self, data) -> None:
        from compress.models.weights import check_weights

        check_transfer(self, data)
        check_weights(self.model, data, "model.weights")
        if isinstance(self.teacher, OnnxTeacher):
            check_foreign_onnx(self.teacher.onnx, data, "teacher.onnx")

    def hash_payload(self) -> dict:
        payload = super().hash_payload()
        if isinstance(self.teacher, OnnxTeacher):
            payload["teacher_sha256"] = file_sha256(self.teacher.onnx)
        if self.model.weights is not None:
            payload["weights_sha256"] = weights_sha256(self.model)
        return payload


def metric_names(cfg: DistillConfig) -> tuple[str, ...]:
    names = (*TRAIN_METRICS, "teacher_test_accuracy_pct", "teacher_params",
             "compression_params_x", "temperature", "alpha", "teacher_runtime", "warning",
             "teacher_warning", "transfer", "transfer_samples")
    if cfg.compare_without_teacher:
        names += ("without_teacher_test_accuracy_pct", "without_teacher_val_accuracy_pct",
                  "distilled_test_accuracy_pct", "distilled_val_accuracy_pct",
                  "distillation_gain_pts", "alpha_choice")
    return names


def check_transfer(cfg: DistillConfig, data) -> None:
    """transfer: unlabeled needs unlabeled images: refused before anything is written."""
    unlabeled = getattr(data, "x_unlabeled", None)
    if cfg.transfer == "unlabeled" and (unlabeled is None or len(unlabeled) == 0):
        raise DataError("field 'transfer': unlabeled, but the data has no unlabeled images; set "
                        "labels_per_class in data (the rest of the training split becomes "
                        "unlabeled) or use transfer: labeled")


def transfer_set(data, cfg: DistillConfig):
    """The data distillation trains on: with transfer: unlabeled, the labelled training split
    plus the unlabeled images, whose label -1 leaves them to the teacher's soft targets."""
    import dataclasses

    import numpy as np

    check_transfer(cfg, data)
    if cfg.transfer == "labeled":
        return data
    x = np.concatenate([data.x_train, data.x_unlabeled])
    y = np.concatenate([data.y_train, np.full(len(data.x_unlabeled), -1, dtype=np.int64)])
    return dataclasses.replace(data, x_train=x, y_train=y)


def teacher_params(teacher: nn.Module) -> int:
    from compress.trainer.ort_teacher import OrtTeacher

    if isinstance(teacher, OrtTeacher):
        from compress.onnx.inspection import inspect_file

        return int(inspect_file(teacher.path)["params"])
    return count_params(teacher)


def distill_model(student: nn.Module, teacher: nn.Module, data, cfg: DistillConfig,
                  progress: bool = True, desc: str = "distill") -> tuple[dict, dict]:
    """Train `student` (in place) from `teacher` (a module, or an OrtTeacher) and, when asked, a
    copy of its initial weights on labels alone; (metrics, history). With alpha: auto the
    labels-only weights replace the distilled ones when they are better on the validation split.
    The stage and `compress.distill` both run this."""
    import torch

    from compress.trainer.distillation import Distiller
    from compress.trainer.ort_teacher import OrtTeacher
    from compress.trainer.teacher_check import weak_teacher
    from compress.trainer.training import (
        accuracy_pct,
        fit,
        fit_metrics,
        predict_logits,
        resolve_device,
    )

    device = resolve_device(cfg.device)
    teacher_acc = accuracy_pct(predict_logits(teacher.to(device), data.x_test, device),
                               data.y_test)
    alone = copy.deepcopy(student) if cfg.compare_without_teacher else None
    t_params = teacher_params(teacher)
    warning = _larger_student(count_params(student), t_params)
    if warning:
        print(f"warning: {desc}: {warning}", file=sys.stderr, flush=True)
    alpha = AUTO_ALPHA if cfg.alpha == "auto" else cfg.alpha
    distiller = Distiller(student, teacher, torch.as_tensor(data.x_train[:2]),
                          cfg.model_copy(update={"alpha": alpha}), cfg.hint, cfg.label_smoothing,
                          cache_teacher=cfg.augment_shift == 0)
    result = fit(distiller, transfer_set(data, cfg), cfg, loss_fn=distiller.loss,
                 progress=progress, desc=f"{desc} (distill)")
    history = {"distilled": result.history}
    shipped, comparison = result, {}
    if alone is not None:
        alone_result = fit(alone, data, cfg, progress=progress, desc=f"{desc} (no teacher)")
        history["without_teacher"] = alone_result.history
        comparison = {
            "distilled_test_accuracy_pct": accuracy_pct(
                predict_logits(student, data.x_test, device), data.y_test),
            "distilled_val_accuracy_pct": result.best_val_accuracy_pct,
            "without_teacher_test_accuracy_pct": accuracy_pct(
                predict_logits(alone, data.x_test, device), data.y_test),
            "without_teacher_val_accuracy_pct": alone_result.best_val_accuracy_pct,
        }
        comparison["distillation_gain_pts"] = round(
            comparison["distilled_test_accuracy_pct"]
            - comparison["without_teacher_test_accuracy_pct"], 4)
        comparison["alpha_choice"] = None
        if cfg.alpha == "auto":  # (here the labels-only run exists to compare with)
            comparison["alpha_choice"] = _auto_choice(
                alpha, result.best_val_accuracy_pct, alone_result.best_val_accuracy_pct)
            if alone_result.best_val_accuracy_pct > result.best_val_accuracy_pct:
                student.load_state_dict(alone.state_dict())
                shipped, alpha = alone_result, 0.0
            print(f"{desc}: alpha auto: {comparison['alpha_choice']}", file=sys.stderr,
                  flush=True)
    metrics = fit_metrics(student, data, shipped, who=desc, o=cfg, progress=progress)
    metrics["transfer"] = cfg.transfer
    metrics["transfer_samples"] = len(data.x_train) + (
        len(data.x_unlabeled) if cfg.transfer == "unlabeled" else 0)
    metrics.update({
        "teacher_test_accuracy_pct": teacher_acc,
        "teacher_params": t_params,
        "compression_params_x": round(t_params / count_params(student), 2),
        "temperature": cfg.temperature,
        "alpha": alpha,  # the alpha the shipped student was trained with
        "teacher_runtime": "onnxruntime" if isinstance(teacher, OrtTeacher) else "pytorch",
        "warning": warning,  # also in the report; None when there is nothing to say
        **comparison,
    })
    if alone is not None:
        # Under alpha: auto a student that shipped on labels alone was not hurt by the teacher.
        hurt = None if alpha == 0 else _teacher_hurt(
            comparison["distilled_test_accuracy_pct"],
            comparison["without_teacher_test_accuracy_pct"], len(data.y_test))
        if hurt:
            print(f"warning: {desc}: {hurt}", file=sys.stderr, flush=True)
            metrics["warning"] = "; ".join(w for w in (warning, hurt) if w)
        metrics["train_wall_time_s"] = round(result.wall_time_s + alone_result.wall_time_s, 3)
        metrics["train_cpu_time_s"] = round(result.cpu_time_s + alone_result.cpu_time_s, 3)
    weak = weak_teacher(teacher_acc, data.num_classes,
                        metrics.get("without_teacher_test_accuracy_pct"), len(data.y_test))
    if weak:  # e.g. a teacher trained on raw inputs, fed normalised ones
        print(f"warning: {desc}: {weak}", file=sys.stderr, flush=True)
    metrics["teacher_warning"] = weak  # also in the report; None when the teacher is fine
    student.cpu()
    return metrics, history


def _auto_choice(alpha: float, distilled_val: float, alone_val: float) -> str:
    """Why alpha: auto shipped the student it shipped (recorded, and shown in the report)."""
    if alone_val > distilled_val:
        return (f"labels only (alpha 0): val accuracy {alone_val:.2f} % against {distilled_val:.2f}"
                f" % distilled with alpha {alpha:g}; the teacher did not help this student")
    return (f"distilled (alpha {alpha:g}): val accuracy {distilled_val:.2f} % against "
            f"{alone_val:.2f} % on labels only")


def _teacher(cfg: DistillConfig, ctx: StageContext, data) -> nn.Module:
    from compress.trainer.distillation import load_model
    from compress.trainer.ort_teacher import OrtTeacher

    if isinstance(cfg.teacher, OnnxTeacher):
        return OrtTeacher(cfg.teacher.onnx)
    art = ctx.inputs[cfg.teacher]
    if art.kind == "onnx":
        if cfg.hint is not None:
            raise StageError(f"distill: teacher '{cfg.teacher}' is an ONNX model (logits only); "
                             "hint distillation needs a checkpoint teacher: drop `hint`")
        check_foreign_onnx(art.path, data, "teacher")
        return OrtTeacher(art.path)
    return load_model(art.path, data.input_shape, role="teacher checkpoint")[0]


@register_stage(DistillConfig, produces="checkpoint", metrics=metric_names)
def distill(cfg: DistillConfig, ctx: StageContext) -> StageResult:
    from compress.models.checkpoint import checkpoint_payload
    from compress.models.weights import initial_model
    from compress.trainer.training import seed_everything

    data = ctx.dataset()
    teacher = _teacher(cfg, ctx, data)
    # Seed before building: the initial weights must not depend on what ran earlier.
    seed_everything(cfg.seed)
    student, weights = initial_model(cfg.model, data.input_shape, data.num_classes, ctx.stage_id)
    metrics, history = distill_model(student, teacher, data, cfg, ctx.progress, ctx.stage_id)
    payload = checkpoint_payload(student, cfg.model, data, ctx.data_cfg, cfg, metrics)
    if weights is not None:
        payload["weights"] = weights
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "history.json", history)
    return StageResult(primary="model.pt", metrics=metrics)


def _larger_student(student_params: int, teacher_params: int) -> str | None:
    if student_params <= teacher_params:
        return None
    return (f"the student has {student_params:,} parameters, more than its teacher's "
            f"{teacher_params:,}: distilling will not make the model smaller; give the student "
            "a smaller `model` (width, hidden sizes)")


def _teacher_hurt(distilled_pct: float, alone_pct: float, test_samples: int) -> str | None:
    """What to say when the same student trained on labels alone is clearly better (at least
    1 pt and 5 test samples): the teacher made it worse, and the ratios should not credit it."""
    samples = round((alone_pct - distilled_pct) * test_samples / 100)
    if alone_pct - distilled_pct < 1.0 or samples < 5:
        return None
    return (f"the same student trained without the teacher is {alone_pct - distilled_pct:.2f} "
            f"pts more accurate ({alone_pct:.2f} % vs {distilled_pct:.2f} %, {samples} of "
            f"{test_samples} test samples): distillation hurt this student; lower `alpha` "
            "(0 = labels only) or `temperature`, or train longer")
