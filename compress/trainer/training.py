"""The training loop shared by every stage that trains (train, distill, prune's fine-tuning):
optimizers, schedules, L1/L2 penalties, early stopping that keeps the best weights, on a CPU or
a GPU, in fp32 or mixed precision, in one process or several (DDP).

How batches are drawn and reach the device is in `compress.batches`, the device and precision
in `compress.devices`, the process group in `compress.distributed`.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from compress.errors import ConfigError, StageError
from compress.models import count_params
from compress.trainer import distributed, finetune
from compress.trainer.baseline import baseline_metrics
from compress.trainer.batches import TrainBatches, epoch_plan, loader_workers
from compress.trainer.devices import MixedPrecision, resolve_device
from compress.trainer.options import (  # noqa: F401  (re-exported)
    FIT_METRICS,
    Optimizer,
    Schedule,
    TrainOptions,
    train_options_of,
)


@dataclass
class FitResult:
    state_dict: dict
    best_epoch: int
    epochs_run: int
    best_val_accuracy_pct: float
    history: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    stopped_early: bool = False
    # How it ran. cpu_time_s sums the CPU time of every rank's training process (DataLoader
    # workers excluded): with wall_time_s, what an energy estimate from CPU time needs.
    cpu_time_s: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    world_size: int = 1


# Without a terminal (a CI log) tqdm draws nothing: a plain line per epoch instead, at most one
# every this many seconds (the first and last epochs always), so a long run is never silent.
PLAIN_PROGRESS_EVERY_S = 10.0


class PlainProgress:
    """'teacher: epoch 3/40, train loss 0.5123, val acc 95.12 %, 12 s' lines on stderr."""

    def __init__(self, desc: str, epochs: int, every_s: float):
        self.desc, self.epochs, self.every_s = desc, epochs, every_s
        self.start = self.last = time.perf_counter()

    def epoch(self, epoch: int, train_loss: float, val_acc: float, stopping: bool) -> None:
        now = time.perf_counter()
        if epoch in (1, self.epochs) or stopping or now - self.last >= self.every_s:
            self.last = now
            end = ", stopping early (patience)" if stopping else ""
            print(f"{self.desc}: epoch {epoch}/{self.epochs}, train loss {train_loss:.4f}, "
                  f"val acc {val_acc:.2f} %, {now - self.start:.0f} s{end}", file=sys.stderr,
                  flush=True)


def _terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def predict_logits(model: nn.Module, x, device: torch.device, batch: int = 1024) -> torch.Tensor:
    # The model goes where the inputs go: a stage given a CPU checkpoint and device cuda
    # (prune, qat) evaluates it there instead of failing on mixed devices.
    model.to(device).eval()
    xt = torch.as_tensor(x)
    outs = [model(xt[i : i + batch].to(device)).float().cpu() for i in range(0, len(xt), batch)]
    return torch.cat(outs)


def accuracy_pct(logits: torch.Tensor, y) -> float:
    y = torch.as_tensor(y)
    return float((logits.argmax(1) == y).double().mean() * 100)


def _optimizer(model: nn.Module, o: TrainOptions, steps_per_epoch: int):
    # No weight decay on biases and norm parameters: decaying them only hurts. A fine-tuned
    # backbone may learn more slowly than the head (compress.trainer.finetune).
    groups = finetune.param_groups(model, o, o.lr)
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
            opt, max_lr=[g["lr"] for g in groups], epochs=o.epochs,
            steps_per_epoch=steps_per_epoch
        )
        per_step = True
    elif o.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=o.gamma, patience=max(1, (o.patience or 10) // 3)
        )
    return opt, sched, per_step


@torch.no_grad()
def _evaluate(model: nn.Module, x, y, device: torch.device) -> tuple[float, float]:
    """Validation accuracy (%) and mean cross-entropy, in fp32. Under DDP each rank scores every
    world_size-th sample and the sums are all-reduced, so every rank gets the same figures and
    picks the same best epoch and the same early stop."""
    r, w = distributed.rank(), distributed.world_size()
    correct = loss = 0.0
    if len(x[r::w]):  # more processes than validation samples leaves some with none
        logits = predict_logits(model, x[r::w], device)
        yt = torch.as_tensor(y[r::w])
        correct = float((logits.argmax(1) == yt).sum())
        loss = float(nn.functional.cross_entropy(logits, yt, reduction="none").double().sum())
    correct, loss = distributed.all_reduce_sum([correct, loss])
    return correct / len(y) * 100, loss / len(y)


def fit(
    model: nn.Module,
    data,
    o: TrainOptions,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train `model` on `data` (a Dataset) and return the weights of the best validation epoch;
    `model` is left holding them, on the training device.

    `loss_fn(logits, targets, inputs)` replaces cross-entropy (distillation passes its own). It
    is called inside autocast, on this rank's share of the batch (`inputs` as the model saw them,
    augmented, on the device). Under DDP `model` is wrapped for the forward pass only: its own
    forward must give the logits, every trainable parameter must get a gradient at every step
    (parameters used in `loss_fn`, such as a projection, count), and a module `loss_fn` runs on
    its own (a frozen teacher) stays outside the wrapper.
    """
    from tqdm.auto import tqdm

    seed_everything(o.seed)
    rank, world = distributed.rank(), distributed.world_size()
    if o.augment_shift and data.x_train.ndim == 2:
        # A table's features have no order: shifting them would swap unrelated columns.
        raise distributed.collective_error(ConfigError(
            f"{desc}: field 'augment_shift': {o.augment_shift} translates samples along an axis, "
            "but the data is a table (layout NF) whose features have no order; set "
            "augment_shift: 0"))
    if o.batch_size % world:
        raise distributed.collective_error(ConfigError(
            f"{desc}: field 'batch_size': {o.batch_size} does not split evenly over {world} "
            f"processes; use a multiple of {world} (batch_size is the global batch)"))
    device = resolve_device(o.device)
    amp = MixedPrecision(o.precision, device)
    model.to(device)
    net = distributed.wrap(model, device)
    x_train = data.x_train
    batches = TrainBatches(
        x_train, data.y_train, device, rank=rank, world=world, max_shift=o.augment_shift,
        workers=loader_workers(o.num_workers, device, x_train.nbytes,
                               distributed.local_world_size()))
    n = len(x_train)
    steps = max(1, math.ceil(n / o.batch_size))
    opt, sched, per_step = _optimizer(model, o, steps)
    ce = nn.CrossEntropyLoss(label_smoothing=o.label_smoothing)
    loss_fn = loss_fn or (lambda logits, target, _x: ce(logits, target))
    # One generator for batches and augmentation, seeded alike on every rank: every rank draws
    # the same global batches (see compress.batches).
    gen = torch.Generator().manual_seed(o.seed)
    weights = [p for p in model.parameters() if p.ndim > 1]

    best = ((-1.0, -math.inf), 0, copy.deepcopy(model.state_dict()))
    history, bad_epochs, stopped = [], 0, False
    t0, cpu0 = time.perf_counter(), time.process_time()
    # disable=None: tqdm draws only on a terminal, so CI logs are not flooded with redraws.
    bar = tqdm(range(o.epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch")
    plain = (PlainProgress(desc, o.epochs, PLAIN_PROGRESS_EVERY_S)
             if progress and not _terminal(sys.stderr) else None)
    for epoch in bar:
        net.train()
        if getattr(o, "freeze_epochs", 0):
            finetune.freeze_backbone(model, epoch < o.freeze_epochs)
        plan = epoch_plan(n, o.batch_size, gen, world, o.augment_shift, x_train.ndim - 2)
        # Summed on the device: reading the loss at every step would wait for the GPU.
        total = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for xb, yb in batches.epoch(plan):
            with amp.autocast():
                logits = net(xb)
                loss = loss_fn(logits, yb, xb)
            if o.l1:
                loss = loss + o.l1 * sum(w.abs().sum() for w in weights)
            opt.zero_grad(set_to_none=True)
            amp.step(loss, opt)
            if per_step:
                sched.step()
            total += loss.detach().double() * len(yb)
            count += len(yb)
        distributed.sync_buffers(model)
        val_acc, val_loss = _evaluate(model, data.x_val, data.y_val, device)
        if sched is not None and not per_step:
            sched.step(val_acc) if o.schedule == "plateau" else sched.step()
        total, count = distributed.all_reduce_sum([float(total), count])
        train_loss = total / max(count, 1)
        if not math.isfinite(train_loss):
            raise distributed.collective_error(StageError(
                f"{desc}: training diverged at epoch {epoch + 1} (loss {train_loss}); "
                "lower lr or use a schedule with warm-up (onecycle)"))
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
        stopped = o.patience is not None and bad_epochs >= o.patience
        if plain is not None:
            plain.epoch(epoch + 1, train_loss, val_acc, stopped)
        if stopped:
            break
    bar.close()
    del net  # DDP's gradient hooks go with it; a later fit() on this model wraps it afresh
    model.load_state_dict(best[2])
    state = {k: v.detach().cpu() for k, v in best[2].items()}
    wall = time.perf_counter() - t0
    cpu = distributed.all_reduce_sum([time.process_time() - cpu0])[0]
    return FitResult(
        state_dict=state, best_epoch=best[1], epochs_run=len(history),
        best_val_accuracy_pct=best[0][0], history=history, wall_time_s=wall,
        stopped_early=stopped, cpu_time_s=cpu, device=str(device), precision=o.precision,
        world_size=world,
    )



def fit_metrics(model, data, result, who: str = "model") -> dict:
    """The metrics every training stage reports for the model it trained, with the plain
    baseline beside them (tables: a standardised LogisticRegression; warns when below it)."""
    device = next(model.parameters()).device
    test_acc = accuracy_pct(predict_logits(model, data.x_test, device), data.y_test)
    return {
        "test_accuracy_pct": test_acc,
        "val_accuracy_pct": result.best_val_accuracy_pct,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "params": count_params(model),
        "train_wall_time_s": round(result.wall_time_s, 3),
        "train_cpu_time_s": round(result.cpu_time_s, 3),
        "device": result.device,
        "precision": result.precision,
        "world_size": result.world_size,
        "train_samples": len(data.x_train),
        "test_samples": len(data.x_test),
        **baseline_metrics(data, test_acc, who),
    }
