"""The training loop shared by every stage that trains (train now; distill and prune fine-tuning
later): optimizers, schedules, L1/L2 penalties, early stopping that keeps the best weights.

Small data sets live on the device as whole tensors and are batched by index, which on a CPU is
several times faster than a DataLoader and on a GPU avoids host-device copies per batch.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, model_validator
from torch import nn

from compress.errors import StageError

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["none", "step", "cosine", "onecycle", "plateau"]


class TrainOptions(BaseModel):
    """Training fields shared by stages that train. Defaults suit small models on a CPU."""

    epochs: int = Field(30, ge=1, le=10_000, description="maximum epochs")
    batch_size: int = Field(64, ge=1, le=65_536, description="samples per optimizer step")
    optimizer: Optimizer = Field("adamw", description="sgd (with momentum), adam or adamw")
    lr: float = Field(1e-3, gt=0, le=10, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (Nesterov)")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="L2 weight decay")
    l1: float = Field(0.0, ge=0, le=1, description="L1 penalty on weights, added to the loss")
    schedule: Schedule = Field("cosine", description="learning-rate schedule")
    step_size: int = Field(10, ge=1, description="epochs between decays (schedule: step)")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor (step, plateau)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    patience: int | None = Field(
        10, ge=1, description="stop after this many epochs in which neither val accuracy nor, at "
        "equal accuracy, val loss improved; null = never"
    )
    augment_shift: int = Field(
        0, ge=0, le=8, description="random translation of inputs by up to this many samples/pixels"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA if present")
    seed: int = Field(0, ge=0, description="seed for weights, batches and augmentation")

    @model_validator(mode="after")
    def _check(self):
        if self.schedule == "onecycle" and self.patience is not None and self.patience < 3:
            raise ValueError("onecycle with patience < 3 stops before the warm-up ends")
        return self


@dataclass
class FitResult:
    state_dict: dict
    best_epoch: int
    epochs_run: int
    best_val_accuracy_pct: float
    history: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError(
            "device: cuda was asked for but no CUDA device is available; "
            "use device: auto or device: cpu"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def predict_logits(model: nn.Module, x, device: torch.device, batch: int = 1024) -> torch.Tensor:
    model.eval()
    xt = torch.as_tensor(x)
    outs = [model(xt[i : i + batch].to(device)).float().cpu() for i in range(0, len(xt), batch)]
    return torch.cat(outs)


def accuracy_pct(logits: torch.Tensor, y) -> float:
    y = torch.as_tensor(y)
    return float((logits.argmax(1) == y).double().mean() * 100)


def _optimizer(model: nn.Module, o: TrainOptions, steps_per_epoch: int):
    # No weight decay on biases and norm parameters: decaying them only hurts.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": o.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if o.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
    elif o.optimizer == "adam":
        # Adam's weight decay is the classic L2 penalty added to the gradient.
        opt = torch.optim.Adam(groups, lr=o.lr)
    else:
        opt = torch.optim.AdamW(groups, lr=o.lr)
    sched, per_step = None, False
    if o.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=o.step_size, gamma=o.gamma)
    elif o.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=o.epochs * steps_per_epoch)
        per_step = True
    elif o.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=o.lr, epochs=o.epochs, steps_per_epoch=steps_per_epoch
        )
        per_step = True
    elif o.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=o.gamma, patience=max(1, (o.patience or 10) // 3)
        )
    return opt, sched, per_step


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each sample by a random offset in [-max_shift, max_shift] per spatial axis,
    filling with the edge value (background for digits, the signal's end for sequences)."""
    spatial = x.ndim - 2
    pad = [max_shift] * (2 * spatial)
    mode = "replicate"
    xp = nn.functional.pad(x, pad, mode=mode)
    offs = torch.randint(0, 2 * max_shift + 1, (len(x), spatial), generator=gen)
    out = torch.empty_like(x)
    size = x.shape[2:]
    for key in torch.unique(offs, dim=0):
        idx = (offs == key).all(1).nonzero().squeeze(1)
        sl = [slice(None), slice(None)] + [
            slice(int(k), int(k) + n) for k, n in zip(key.tolist(), size, strict=True)
        ]
        out[idx] = xp[idx][tuple(sl)]
    return out


def fit(
    model: nn.Module,
    data,
    o: TrainOptions,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train `model` on `data` (a Dataset) and return the weights of the best validation epoch.

    `loss_fn(logits, targets, inputs)` replaces cross-entropy (distillation passes its own).
    """
    from tqdm.auto import tqdm

    seed_everything(o.seed)
    device = resolve_device(o.device)
    model.to(device)
    x = torch.as_tensor(data.x_train)
    y = torch.as_tensor(data.y_train).to(device)
    n = len(x)
    steps = max(1, math.ceil(n / o.batch_size))
    opt, sched, per_step = _optimizer(model, o, steps)
    ce = nn.CrossEntropyLoss(label_smoothing=o.label_smoothing)
    loss_fn = loss_fn or (lambda logits, target, _x: ce(logits, target))
    gen = torch.Generator().manual_seed(o.seed)
    weights = [p for p in model.parameters() if p.ndim > 1]

    best = ((-1.0, -math.inf), 0, copy.deepcopy(model.state_dict()))
    history, bad_epochs, stopped = [], 0, False
    t0 = time.perf_counter()
    # disable=None: tqdm draws only on a terminal, so CI logs are not flooded with redraws.
    bar = tqdm(range(o.epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch")
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for i in range(steps):
            idx = perm[i * o.batch_size : (i + 1) * o.batch_size]
            if len(idx) < 2 and n >= 2:
                continue  # a batch of one breaks BatchNorm statistics
            xb = x[idx]
            if o.augment_shift:
                xb = _shift(xb, o.augment_shift, gen)
            xb = xb.to(device, non_blocking=True)
            logits = model(xb)
            loss = loss_fn(logits, y[idx], xb)
            if o.l1:
                loss = loss + o.l1 * sum(w.abs().sum() for w in weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if per_step:
                sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        val_logits = predict_logits(model, data.x_val, device)
        val_acc = accuracy_pct(val_logits, data.y_val)
        val_loss = float(nn.functional.cross_entropy(val_logits, torch.as_tensor(data.y_val)))
        if sched is not None and not per_step:
            sched.step(val_acc) if o.schedule == "plateau" else sched.step()
        train_loss = total / max(count, 1)
        if not math.isfinite(train_loss):
            raise StageError(
                f"{desc}: training diverged at epoch {epoch + 1} (loss {train_loss}); "
                "lower lr or use a schedule with warm-up (onecycle)"
            )
        history.append({"epoch": epoch + 1, "train_loss": round(train_loss, 6),
                        "val_loss": round(val_loss, 6), "val_accuracy_pct": val_acc})
        bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.2f}%")
        # A small validation split saturates its accuracy early; among epochs with the best
        # accuracy, the lowest validation cross-entropy (more confident and right) wins.
        if (val_acc, -val_loss) > best[0]:
            best = ((val_acc, -val_loss), epoch + 1, copy.deepcopy(model.state_dict()))
            bad_epochs = 0
        else:
            bad_epochs += 1
        if o.patience is not None and bad_epochs >= o.patience:
            stopped = True
            break
    bar.close()
    model.load_state_dict(best[2])
    state = {k: v.detach().cpu() for k, v in best[2].items()}
    return FitResult(
        state_dict=state, best_epoch=best[1], epochs_run=len(history),
        best_val_accuracy_pct=best[0][0], history=history,
        wall_time_s=time.perf_counter() - t0, stopped_early=stopped,
    )
