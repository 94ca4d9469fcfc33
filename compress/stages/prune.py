"""Stage `prune`: remove channels/neurons for real (structured, with torch-pruning's dependency
graph so residual adds and batch norms stay consistent), or zero single weights (unstructured,
reported as sparsity: dense kernels do not get faster). Iterative: prune a step, fine-tune with
distillation from the teacher, repeat.

Consumes a checkpoint (and optionally a teacher checkpoint); produces `model.pt` whose spec holds
the real channel counts, so it rebuilds without pickled code, and `prune.json` with every step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from compress import artifacts
from compress.errors import StageError
from compress.models import RnnSpec, parse_model_spec
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import DistillOptions, TrainOptions


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
    ratio: float = Field(0.5, gt=0, lt=1, description="fraction of channels (or weights) removed")
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
    round_to: int = Field(8, ge=1, le=256, description="channel counts kept at a multiple of this")
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
    return names + (("sparsity_pct", "note") if cfg.method == "unstructured" else ())


@register_stage(PruneConfig, produces="checkpoint", metrics=metric_names)
def prune(cfg: PruneConfig, ctx: StageContext) -> StageResult:
    import torch

    from compress.models.checkpoint import checkpoint_payload
    from compress.trainer import pruning
    from compress.trainer.distillation import load_model
    from compress.trainer.training import resolve_device

    data = ctx.dataset()
    model, ckpt = load_model(ctx.inputs[cfg.input].path, data.input_shape)
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
    device = resolve_device(cfg.device)
    example = torch.as_tensor(data.x_train[:2])
    classifier = model.head
    before = _measure(model, example, data, device)
    model.cpu()  # torch-pruning traces the graph with the (CPU) example
    steps: list[dict] = []

    def log(step: int, m, res) -> None:
        # Unstructured masks leave shapes (and so MACs) unchanged and make weights non-leaf
        # tensors, which the MAC counter cannot copy.
        now = _measure(m, example, data, device,
                       macs=None if cfg.method == "structured" else before["macs"])
        entry = {"step": step, "params": now["params"], "macs": now["macs"],
                 "val_accuracy_pct": res.best_val_accuracy_pct if res else None,
                 "test_accuracy_pct": now["test_accuracy_pct"]}
        if cfg.method == "unstructured":
            entry["sparsity_pct"] = round(pruning.sparsity_pct(m, classifier), 3)
        steps.append(entry)

    finetune = pruning.Finetuner(cfg, ctx, data, teacher)
    if cfg.method == "structured":
        pruning.prune_structured(model, classifier, example, cfg, data, finetune, device, log)
        new_spec = pruning.spec_after_pruning(model, spec)
    else:
        pruning.prune_unstructured(model, classifier, cfg, finetune, log)
        new_spec = spec
    rebuilt = pruning.check_rebuild(model.cpu().eval(), new_spec, data.input_shape,
                                    data.num_classes, example)
    after = _measure(rebuilt, example, data, torch.device("cpu"))
    metrics = _metrics(cfg, before, after, steps, len(data.x_test))
    if cfg.method == "unstructured":
        metrics["sparsity_pct"] = round(pruning.sparsity_pct(rebuilt, rebuilt.head), 3)
        metrics["note"] = ("unstructured sparsity: same dense shapes, no speed-up with dense "
                           "kernels; the zeros only help compression of the file")
    payload = checkpoint_payload(rebuilt, new_spec, data, ctx.data_cfg, cfg, metrics)
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "prune.json", {"before": before, "steps": steps,
                                                      "spec": new_spec.model_dump(mode="json")})
    return StageResult(primary="model.pt", metrics=metrics)


def _measure(model, example, data, device, macs: int | None = None) -> dict:
    """Parameters, MACs (counted unless given) and test accuracy of `model`."""
    from compress.models import count_params
    from compress.trainer.pruning import macs_of
    from compress.trainer.training import accuracy_pct, predict_logits

    counted = macs_of(model.cpu(), example) if macs is None else macs
    model.to(device)
    return {"params": count_params(model), "macs": counted,
            "test_accuracy_pct": accuracy_pct(predict_logits(model, data.x_test, device),
                                              data.y_test)}


def _metrics(cfg: PruneConfig, before: dict, after: dict, steps: list[dict],
             test_samples: int) -> dict:
    metrics = {
        "method": cfg.method,
        "test_accuracy_pct": after["test_accuracy_pct"],
        "input_test_accuracy_pct": before["test_accuracy_pct"],
        "accuracy_change_pts": round(after["test_accuracy_pct"] - before["test_accuracy_pct"], 4),
        "params_before": before["params"],
        "params": after["params"],
        "macs_before": before["macs"],
        "macs": after["macs"],
        "val_accuracy_pct": steps[-1]["val_accuracy_pct"] if steps else None,
        "test_samples": test_samples,
    }
    metrics["params_reduction_x"] = round(metrics["params_before"] / metrics["params"], 3)
    metrics["macs_reduction_x"] = round(metrics["macs_before"] / max(1, metrics["macs"]), 3)
    return metrics
