"""Stage `prune`: remove channels/neurons for real (structured, with torch-pruning's dependency
graph so residual adds and batch norms stay consistent), or zero single weights (unstructured,
reported as sparsity: dense kernels do not get faster). Iterative: prune a step, fine-tune with
distillation from the teacher, repeat.

Consumes a checkpoint (and optionally a teacher checkpoint); produces `model.pt` whose spec holds
the real channel counts, so it rebuilds without pickled code, and `prune.json` with every step.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from compress import artifacts
from compress.errors import StageError
from compress.models import (
    MlpSpec,
    PythonSpec,
    RnnSpec,
    TransformerSpec,
    build_model,
    count_params,
    parse_model_spec,
)
from compress.models.checkpoint import checkpoint_payload
from compress.models.resnet import ResBlockSpec
from compress.models.transformer import EncoderLayerSpec
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.distillation import Distiller, DistillOptions, load_model
from compress.trainer.training import (
    FitResult,
    TrainOptions,
    accuracy_pct,
    fit,
    predict_logits,
    resolve_device,
)


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


def spec_after_pruning(model: nn.Module, spec, input_shape: list[int], num_classes: int):
    """The spec with the channel counts the pruned modules really have."""
    if isinstance(spec, PythonSpec):
        # The user's model: what differs from a fresh, unpruned build of it, recorded.
        from compress.models.python import record_pruning

        base = spec.model_copy(update={"pruned_attributes": None, "pruned_shapes": None})
        attrs, shapes = record_pruning(build_model(base, input_shape, num_classes), model)
        return spec.model_copy(update={"pruned_attributes": attrs, "pruned_shapes": shapes})
    if isinstance(spec, MlpSpec):
        hidden = [m.out_features for m in model.features if isinstance(m, nn.Linear)]
        return spec.model_copy(update={"hidden": hidden})
    if isinstance(spec, TransformerSpec):
        blocks = [EncoderLayerSpec(heads=layer.attn.num_heads, ff=layer.ff.fc1.out_features)
                  for layer in model.layers]
        return spec.model_copy(update={"blocks": blocks})
    blocks = [
        ResBlockSpec(mid=b.conv1.out_channels, out=b.conv2.out_channels, stride=b.conv1.stride[0],
                     projection=not isinstance(b.shortcut, nn.Identity))
        for b in model.blocks
    ]
    return spec.model_copy(update={"stem": model.stem[0].out_channels, "blocks": blocks})


def classifier_of(model: nn.Module, num_classes: int) -> nn.Module:
    """The layer that outputs the logits (kept whole): `head` in our families, else the last
    Linear or Conv whose outputs are the classes."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head
    found = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)
             and getattr(m, "out_features", getattr(m, "out_channels", None)) == num_classes]
    if not found:
        raise StageError(f"prune: no Linear or Conv layer of the model outputs the {num_classes} "
                         "classes; the last layer must be the classifier")
    return found[-1]


def _prunable(model: nn.Module, classifier: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules()
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear) and m is not classifier]


def _macs(model: nn.Module, example: torch.Tensor) -> int:
    import torch_pruning as tp

    macs, _ = tp.utils.count_ops_and_params(model, example)
    return int(macs)


def _importance(name: str):
    import torch_pruning as tp

    return {
        "l1": lambda: tp.importance.MagnitudeImportance(p=1),
        "l2": lambda: tp.importance.MagnitudeImportance(p=2),
        "bn_scale": tp.importance.BNScaleImportance,
        "taylor": tp.importance.TaylorImportance,
    }[name]()


def _taylor_gradients(model: nn.Module, data, cfg: PruneConfig, device) -> None:
    """Accumulate loss gradients on a seeded sample of the train split (Taylor importance)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(data.x_train), generator=gen)[: 8 * cfg.batch_size]
    x, y = torch.as_tensor(data.x_train)[idx], torch.as_tensor(data.y_train)[idx]
    model.to(device).eval()  # eval: batch-norm statistics must not move while ranking
    model.zero_grad()
    for i in range(0, len(x), cfg.batch_size):
        xb, yb = x[i : i + cfg.batch_size].to(device), y[i : i + cfg.batch_size].to(device)
        nn.functional.cross_entropy(model(xb), yb).backward()


class _Finetuner:
    """Fine-tunes after each pruning step, distilling from the teacher when there is one."""

    def __init__(self, cfg: PruneConfig, data, teacher, progress: bool, desc: str):
        self.cfg, self.data, self.teacher = cfg, data, teacher
        self.progress, self.desc = progress, desc

    def __call__(self, model: nn.Module, step: int) -> FitResult | None:
        if self.cfg.epochs == 0:
            return None
        desc = f"{self.desc} (fine-tune {step}/{self.cfg.steps})"
        if self.teacher is None:
            return fit(model, self.data, self.cfg, progress=self.progress, desc=desc)
        distiller = Distiller(model, self.teacher, torch.as_tensor(self.data.x_train[:2]),
                              self.cfg, label_smoothing=self.cfg.label_smoothing)
        return fit(distiller, self.data, self.cfg, loss_fn=distiller.loss,
                   progress=self.progress, desc=desc)


def _structured(model, classifier, example, cfg: PruneConfig, data, finetune, device, log):
    import torch_pruning as tp

    ignored, heads, free = [classifier], {}, None
    if hasattr(model, "pruning_plan"):
        # Transformer: whole heads (qkv rows + proj columns) and feed-forward neurons go; the
        # residual width stays, as the layers that write it are kept whole.
        heads, keep, free = model.pruning_plan()
        ignored += keep
    pruner = tp.pruner.MetaPruner(
        model, example, importance=_importance(cfg.importance), pruning_ratio=cfg.ratio,
        iterative_steps=cfg.steps, global_pruning=cfg.global_pruning,
        max_pruning_ratio=cfg.max_layer_ratio, round_to=cfg.round_to if cfg.round_to > 1 else None,
        ignored_layers=ignored, unwrapped_parameters=free, num_heads=heads,
        prune_num_heads=bool(heads), prune_head_dims=not heads,
        head_pruning_ratio=cfg.ratio if cfg.head_ratio is None else cfg.head_ratio,
    )
    if heads and not cfg.global_pruning:
        # torch-pruning 1.6 applies each step's local head ratio to the heads left, not to the
        # initial count (2 steps of a 0.5 schedule take 4 heads to 1): remove them all in step 1.
        pruner.per_step_head_pruning_ratio = [0.0, pruner.head_pruning_ratio] + [0.0] * cfg.steps
    for step in range(1, cfg.steps + 1):
        if cfg.importance == "taylor":
            _taylor_gradients(model, data, cfg, device)
        model.cpu()
        pruner.step()
        if hasattr(model, "after_pruning"):
            model.after_pruning()
        model.zero_grad(set_to_none=True)
        log(step, model, finetune(model, step))


def _unstructured(model, classifier, cfg: PruneConfig, finetune, log):
    from torch.nn.utils import prune as tprune

    params = [(m, "weight") for m in _prunable(model, classifier)]
    # Each round removes this fraction of the weights still left, reaching `ratio` at the end.
    amount = 1 - (1 - cfg.ratio) ** (1 / cfg.steps)
    method = tprune.L1Unstructured
    for step in range(1, cfg.steps + 1):
        if cfg.global_pruning:
            tprune.global_unstructured(params, pruning_method=method, amount=amount)
        else:
            for m, name in params:
                tprune.l1_unstructured(m, name, amount=amount)
        log(step, model, finetune(model, step))
    for m, name in params:
        tprune.remove(m, name)


def sparsity_pct(model: nn.Module, classifier: nn.Module) -> float:
    weights = [m.weight for m in _prunable(model, classifier)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return 100.0 * zeros / max(1, sum(w.numel() for w in weights))


def metric_names(cfg: PruneConfig) -> tuple[str, ...]:
    names = ("method", "test_accuracy_pct", "input_test_accuracy_pct", "accuracy_change_pts",
             "params_before", "params", "macs_before", "macs", "val_accuracy_pct", "test_samples",
             "params_reduction_x", "macs_reduction_x")
    return names + (("sparsity_pct", "note") if cfg.method == "unstructured" else ())


def prune_model(model: nn.Module, data, cfg: PruneConfig, teacher: nn.Module | None = None,
                progress: bool = True, desc: str = "prune") -> tuple[dict, dict]:
    """Prune `model` in place (and fine-tune it after each step); (metrics, report of steps).

    The stage and `compress.prune` both run this; the stage then proves the checkpoint rebuilds.
    """
    device = resolve_device(cfg.device)
    example = torch.as_tensor(data.x_train[:2])
    classifier = classifier_of(model, data.num_classes)
    before = {"params": count_params(model), "macs": _macs(model, example),
              "test_accuracy_pct": accuracy_pct(predict_logits(model, data.x_test, device),
                                                data.y_test)}
    model.cpu()  # torch-pruning traces the graph with the (CPU) example
    steps: list[dict] = []

    def log(step: int, m: nn.Module, res: FitResult | None) -> None:
        m.to(device)
        # Unstructured masks leave shapes (and so MACs) unchanged and make weights non-leaf
        # tensors, which the MAC counter cannot copy.
        macs = _macs(m.cpu(), example) if cfg.method == "structured" else before["macs"]
        entry = {"step": step, "params": count_params(m), "macs": macs,
                 "val_accuracy_pct": res.best_val_accuracy_pct if res else None,
                 "test_accuracy_pct": accuracy_pct(predict_logits(m, data.x_test, device),
                                                   data.y_test)}
        if cfg.method == "unstructured":
            entry["sparsity_pct"] = round(sparsity_pct(m, classifier), 3)
        steps.append(entry)

    finetune = _Finetuner(cfg, data, teacher, progress, desc)
    if cfg.method == "structured":
        _structured(model, classifier, example, cfg, data, finetune, device, log)
    else:
        _unstructured(model, classifier, cfg, finetune, log)
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
        "macs": _macs(model, example),
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


def check_rebuild(model: nn.Module, spec, data) -> None:
    """Proof that the checkpoint rebuilds from its spec alone: a fresh model, strict load,
    identical outputs."""
    example = torch.as_tensor(data.x_train[:2])
    rebuilt = build_model(spec, data.input_shape, data.num_classes)
    try:
        rebuilt.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as e:
        raise StageError(f"pruned model does not rebuild from its spec: {str(e)[:300]}") from e
    rebuilt.eval()
    with torch.no_grad():
        if not torch.allclose(rebuilt(example), model(example), atol=1e-5):
            raise StageError("pruned model rebuilt from its spec gives different outputs")


@register_stage(PruneConfig, produces="checkpoint", metrics=metric_names)
def prune(cfg: PruneConfig, ctx: StageContext) -> StageResult:
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
