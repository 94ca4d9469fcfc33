"""Fine-tuning a pretrained model: the new classifier alone first (`freeze_epochs`), then
everything, the backbone at a lower learning rate (`backbone_lr_scale`), as transfer-learning
recipes do: a randomly initialised head's first, large gradients would otherwise wreck the
pretrained features before the head has learnt anything.

The head is the model's last Linear layer (compress.models.weights.classifier_name): the layer
that `weights:` re-initialises when the class count differs.
"""

from __future__ import annotations

from torch import nn

from compress.models.weights import classifier_name


def _is_head(model: nn.Module, name: str) -> bool:
    head = classifier_name(model)
    return head is not None and (name == head or name.startswith(head + "."))


def param_groups(model: nn.Module, o, lr: float) -> list[dict]:
    """Optimizer groups: weight decay on weights (ndim > 1) only, and, with backbone_lr_scale,
    the backbone at lr * scale beside the head at lr."""
    scale = getattr(o, "backbone_lr_scale", 1.0)
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        head = scale == 1.0 or _is_head(model, name.rsplit(".", 1)[0])
        groups.setdefault((head, p.ndim > 1), []).append(p)
    return [{"params": ps, "weight_decay": o.weight_decay if decay else 0.0,
             "lr": lr if head else lr * scale}
            for (head, decay), ps in sorted(groups.items(), reverse=True)]


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Train the head alone (frozen: the backbone gets no gradients and its BatchNorm layers
    keep their pretrained statistics), or everything again. Call after model.train()."""
    head = classifier_name(model)
    for name, module in model.named_modules():
        if not name or _is_head(model, name) or (head or "").startswith(name + "."):
            continue  # the head, and the containers that hold it
        for p in module.parameters(recurse=False):
            p.requires_grad_(not frozen)
        if frozen and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
