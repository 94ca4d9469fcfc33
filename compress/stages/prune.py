"""Stage `prune`: remove channels/neurons for real (structured, with torch-pruning's dependency
graph so residual adds and batch norms stay consistent), or zero single weights (unstructured,
reported as sparsity: dense kernels do not get faster). Iterative: prune a step, fine-tune with
distillation from the teacher, repeat.

Consumes a checkpoint (and optionally a teacher checkpoint); produces `model.pt` whose spec holds
the real channel counts, so it rebuilds without pickled code, and `prune.json` with every step.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from compress import artifacts
from compress.errors import StageError
from compress.models import RnnSpec, count_params, parse_model_spec
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import DistillOptions, TrainOptions

if TYPE_CHECKING:  # torch is imported when a stage runs, not when the command line starts
    from torch import nn

    from compress.trainer.training import FitResult


class PruneConfig(StageConfig, TrainOptions, DistillOptions):
    stage: Literal["prune"] = "prune"
    input: str = Field(description="id of the stage whose checkpoint is pruned")
    teacher: str | None = Field(
        None, description="checkpoint that fine-tuning distills from; null = labels only"
    )
    method: Literal["structured", "unstructured"] = Field(
        "structured", description="structured removes channels (smaller, faster); unstructured "
        "zeroes weights (sparsity only)"
    )
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = Field(
        "l2", description="channel ranking: weight magnitude, batch-norm scale, or first-order "
        "Taylor (|weight x gradient|)"
    )
    ratio: float = Field(0.5, gt=0, lt=1, description="fraction of channels (or weights) removed; "
                         "structured, per layer: width x (1 - ratio) kept, to the nearest "
                         "multiple of round_to")
    head_ratio: float | None = Field(
        None, ge=0, lt=1, description="transformer: fraction of attention heads removed per layer "
        "(whole heads); null = ratio. `ratio` then applies to feed-forward neurons"
    )
    global_pruning: bool = Field(
        False, description="rank channels across layers (uneven widths) instead of the same "
        "ratio per layer"
    )
    max_layer_ratio: float = Field(0.9, gt=0, le=1, description="global: cap per layer")
    steps: int = Field(3, ge=1, le=50, description="prune/fine-tune rounds to reach `ratio`")
    round_to: int = Field(8, ge=1, le=256, description="channel counts kept at a multiple of "
                          "this (a warning where that removes 5+ points more than ratio)")
    epochs: int = Field(5, ge=0, le=10_000, description="fine-tuning epochs after each step")

    references = {"input": {"checkpoint"}, "teacher": {"checkpoint"}}

    @model_validator(mode="after")
    def _importance_fits_method(self):
        if self.method == "unstructured" and self.importance not in ("l1", "l2"):
            raise ValueError("unstructured pruning ranks single weights by magnitude: use "
                             "importance l1 or l2")
        return self


def metric_names(cfg: PruneConfig) -> tuple[str, ...]:
    names = ("method", "test_accuracy_pct", "input_test_accuracy_pct", "accuracy_change_pts",
             "params_before", "params", "macs_before", "macs", "val_accuracy_pct", "test_samples",
             "params_reduction_x", "macs_reduction_x")
    if cfg.method == "unstructured":
        return names + ("sparsity_pct", "note")
    return names + ("channels_kept", "channel_warnings", "warning")


def prune_model(model: nn.Module, data, cfg: PruneConfig, teacher: nn.Module | None = None,
                progress: bool = True, desc: str = "prune") -> tuple[dict, dict]:
    """Prune `model` in place (and fine-tune it after each step); (metrics, report of steps).

    The stage and `compress.prune` both run this; the stage then proves the checkpoint rebuilds.
    """
    import torch

    from compress.trainer.pruning import (
        Finetuner,
        channel_report,
        channels_text,
        classifier_of,
        count_macs,
        layer_widths,
        sparsity_pct,
        structured,
        unstructured,
    )
    from compress.trainer.training import accuracy_pct, predict_logits, resolve_device

    device = resolve_device(cfg.device)
    example = torch.as_tensor(data.x_train[:2])
    classifier = classifier_of(model, data.num_classes)
    before = {"params": count_params(model), "macs": count_macs(model, example),
              "test_accuracy_pct": accuracy_pct(predict_logits(model, data.x_test, device),
                                                data.y_test)}
    widths = layer_widths(model, classifier)
    model.cpu()  # torch-pruning traces the graph with the (CPU) example
    steps: list[dict] = []

    def log(step: int, m: nn.Module, res: FitResult | None) -> None:
        m.to(device)
        # Unstructured masks leave shapes (and so MACs) unchanged and make weights non-leaf
        # tensors, which the MAC counter cannot copy.
        macs = count_macs(m.cpu(), example) if cfg.method == "structured" else before["macs"]
        entry = {"step": step, "params": count_params(m), "macs": macs,
                 "val_accuracy_pct": res.best_val_accuracy_pct if res else None,
                 "test_accuracy_pct": accuracy_pct(predict_logits(m, data.x_test, device),
                                                   data.y_test)}
        if cfg.method == "unstructured":
            entry["sparsity_pct"] = round(sparsity_pct(m, classifier), 3)
        steps.append(entry)

    finetune = Finetuner(cfg, data, teacher, progress, desc)
    if cfg.method == "structured":
        structured(model, classifier, example, cfg, data, finetune, device, log)
    else:
        unstructured(model, classifier, cfg, finetune, log)
    model.cpu().eval()

    after_acc = accuracy_pct(predict_logits(model, data.x_test, torch.device("cpu")),
                             data.y_test)
    metrics = {
        "method": cfg.method,
        "test_accuracy_pct": after_acc,
        "input_test_accuracy_pct": before["test_accuracy_pct"],
        "accuracy_change_pts": round(after_acc - before["test_accuracy_pct"], 4),
        "params_before": before["params"],
        "params": count_params(model),
        "macs_before": before["macs"],
        "macs": count_macs(model, example),
        "val_accuracy_pct": steps[-1]["val_accuracy_pct"] if steps else None,
        "test_samples": len(data.x_test),
    }
    metrics["params_reduction_x"] = round(metrics["params_before"] / metrics["params"], 3)
    metrics["macs_reduction_x"] = round(metrics["macs_before"] / max(1, metrics["macs"]), 3)
    if cfg.method == "unstructured":
        metrics["sparsity_pct"] = round(sparsity_pct(model, classifier), 3)
        metrics["note"] = ("unstructured sparsity: same dense shapes, no speed-up with dense "
                           "kernels; the zeros only help compression of the file")
        return metrics, {"before": before, "steps": steps}
    layers, warnings = channel_report(widths, layer_widths(model, classifier), cfg.ratio,
                                      cfg.round_to)
    metrics["channels_kept"] = channels_text(layers)
    metrics["channel_warnings"] = len(warnings)
    metrics["warning"] = "; ".join(warnings) or None  # the report lists stage warnings
    print(f"{desc}: channels kept per layer: {metrics['channels_kept']}", file=sys.stderr)
    for w in warnings:
        print(f"warning: {desc}: {w}", file=sys.stderr)
    return metrics, {"before": before, "steps": steps, "layers": layers, "warnings": warnings}


@register_stage(PruneConfig, produces="checkpoint", metrics=metric_names)
def prune(cfg: PruneConfig, ctx: StageContext) -> StageResult:
    from compress.models.checkpoint import checkpoint_payload
    from compress.trainer.distillation import load_model
    from compress.trainer.pruning import check_rebuild, spec_after_pruning

    data = ctx.dataset()
    src = ctx.inputs[cfg.input]
    model, ckpt = load_model(src.path, data.input_shape)
    spec = parse_model_spec(ckpt["model"])
    if isinstance(spec, RnnSpec):
        raise StageError(
            f"prune: stage '{cfg.input}' is an rnn ({spec.cell}); pruning supports mlp, resnet and "
            "transformer (torch-pruning has no GRU pruner and its LSTM pruner is single-layer "
            "only): shrink an rnn by distilling into a smaller `hidden` instead"
        )
    teacher = None
    if cfg.teacher is not None:
        teacher, _ = load_model(ctx.inputs[cfg.teacher].path, data.input_shape,
                                role="teacher checkpoint")
    metrics, report = prune_model(model, data, cfg, teacher, ctx.progress, ctx.stage_id)
    new_spec = (spec_after_pruning(model, spec, data.input_shape, data.num_classes)
                if cfg.method == "structured" else spec)
    check_rebuild(model, new_spec, data)
    payload = checkpoint_payload(model, new_spec, data, ctx.data_cfg, cfg, metrics)
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "prune.json", {**report,
                                                      "spec": new_spec.model_dump(mode="json")})
    return StageResult(primary="model.pt", metrics=metrics)
