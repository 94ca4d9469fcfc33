"""Pruning engine for stage `prune` and `compress.prune`: torch-pruning's dependency graph
removes channels, neurons and attention heads for real (structured), or torch's pruning utilities
zero single weights (unstructured); each step is fine-tuned, distilling from a teacher when there
is one. `cfg` is the prune stage's config (fields read: ratio, steps, importance, ...)."""

from __future__ import annotations

import torch
from torch import nn

from compress.errors import StageError
from compress.models import MlpSpec, PythonSpec, TransformerSpec, build_model
from compress.models.resnet import ResBlockSpec
from compress.models.transformer import EncoderLayerSpec
from compress.trainer.distillation import Distiller
from compress.trainer.training import FitResult, fit


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


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    import torch_pruning as tp

    macs, _ = tp.utils.count_ops_and_params(model, example)
    return int(macs)


def layer_widths(model: nn.Module, classifier: nn.Module) -> dict[str, int]:
    """Output channels (Conv) or units (Linear) of every prunable layer, by module name."""
    return {name: getattr(m, "out_channels", getattr(m, "out_features", 0))
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear) and m is not classifier}


def kept_as_asked(width: int, ratio: float, round_to: int) -> int:
    """The count `ratio` asks a layer of `width` to keep: width x (1 - ratio), to the NEAREST
    multiple of `round_to` (at least one multiple, at most the width)."""
    step = max(1, round_to)
    return min(width, max(step, step * round(width * (1 - ratio) / step)))


def _exact_ratio_dict(model: nn.Module, classifier: nn.Module, cfg) -> dict:
    """Per-layer ratios that make torch-pruning keep `kept_as_asked` channels.

    torch-pruning 1.6 keeps int(C x (1 - ratio)) channels (truncated: 48 x 0.833 = 39.98 -> 39)
    and then rounds that DOWN to a multiple of round_to (39 -> 32): ratio 0.167 with round_to 8
    removed 16 of 48 channels, not 8. Asking for ratio 1 - (keep + 0.5) / C per layer makes both
    steps land on `keep` at the last pruning step.
    """
    out = {}
    for m in _prunable(model, classifier):
        width = getattr(m, "out_channels", getattr(m, "out_features", 0))
        keep = kept_as_asked(width, cfg.ratio, cfg.round_to)
        out[m] = max(0.0, 1 - (keep + 0.5) / width)
    return out


def channel_report(before: dict[str, int], after: dict[str, int], ratio: float,
                   round_to: int) -> tuple[list[dict], list[str]]:
    """(per layer: channels before, asked, kept; warnings where rounding or coupling removed
    clearly more than the ratio asks: 5 points of the layer's width or more)."""
    rows, warnings = [], []
    for name, width in before.items():
        kept = after.get(name, width)
        asked = round(width * (1 - ratio), 2)
        removed = 1 - kept / width
        rows.append({"layer": name, "before": width, "asked": asked, "kept": kept,
                     "removed_pct": round(100 * removed, 2)})
        if removed > ratio + 0.05:
            warnings.append(
                f"layer {name}: kept {kept} of {width} channels ({100 * removed:.1f} % removed) "
                f"where ratio {ratio:g} asks {asked:g}: rounding to multiples of {round_to} or "
                "a coupled layer (residual add) removed more; lower round_to or the ratio")
    return rows, warnings


def channels_text(rows: list[dict]) -> str:
    return ", ".join(f"{r['layer']} {r['before']}->{r['kept']}" for r in rows)


def _importance(name: str):
    import torch_pruning as tp

    return {
        "l1": lambda: tp.importance.MagnitudeImportance(p=1),
        "l2": lambda: tp.importance.MagnitudeImportance(p=2),
        "bn_scale": tp.importance.BNScaleImportance,
        "taylor": tp.importance.TaylorImportance,
    }[name]()


def _taylor_gradients(model: nn.Module, data, cfg, device) -> None:
    """Accumulate loss gradients on a seeded sample of the train split (Taylor importance)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(data.x_train), generator=gen)[: 8 * cfg.batch_size]
    x, y = torch.as_tensor(data.x_train)[idx], torch.as_tensor(data.y_train)[idx]
    model.to(device).eval()  # eval: batch-norm statistics must not move while ranking
    model.zero_grad()
    for i in range(0, len(x), cfg.batch_size):
        xb, yb = x[i : i + cfg.batch_size].to(device), y[i : i + cfg.batch_size].to(device)
        nn.functional.cross_entropy(model(xb), yb).backward()


class Finetuner:
    """Fine-tunes after each pruning step, distilling from the teacher when there is one."""

    def __init__(self, cfg, data, teacher, progress: bool, desc: str):
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


def structured(model, classifier, example, cfg, data, finetune, device, log):
    import torch_pruning as tp

    ignored, heads, free = [classifier], {}, None
    if hasattr(model, "pruning_plan"):
        # Transformer: whole heads (qkv rows + proj columns) and feed-forward neurons go; the
        # residual width stays, as the layers that write it are kept whole.
        heads, keep, free = model.pruning_plan()
        ignored += keep
    # Global ranking chooses uneven widths on purpose; heads have their own schedule.
    exact = None if heads or cfg.global_pruning else _exact_ratio_dict(model, classifier, cfg)
    pruner = tp.pruner.MetaPruner(
        model, example, importance=_importance(cfg.importance), pruning_ratio=cfg.ratio,
        iterative_steps=cfg.steps, global_pruning=cfg.global_pruning,
        max_pruning_ratio=cfg.max_layer_ratio, round_to=cfg.round_to if cfg.round_to > 1 else None,
        pruning_ratio_dict=exact,
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


def unstructured(model, classifier, cfg, finetune, log):
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
