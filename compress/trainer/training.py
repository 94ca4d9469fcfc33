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
from typing import Any

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


def _optimizer(model: nn.Module, o: TrainOptions, steps_per_epoch: int, epochs: int):
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
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        per_step = True
    elif o.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in groups], epochs=epochs,
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


@dataclass
class _Loop:
    """What one fit() sets up before its first epoch (the steps below share it)."""

    model: nn.Module
    net: nn.Module  # the model, wrapped for DDP when several processes train
    device: torch.device
    amp: MixedPrecision
    batches: TrainBatches
    opt: torch.optim.Optimizer
    sched: Any
    per_step: bool  # the schedule steps per batch (cosine, onecycle), not per epoch
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    gen: torch.Generator
    weights: list[torch.Tensor]  # what the L1 penalty reaches
    epochs: int  # the most epochs it may run: `epochs`, or `max_epochs` for epochs: auto


@dataclass
class _Best:
    """The best validation epoch so far. A small validation split saturates its accuracy
    early; among epochs with the best accuracy, the lowest validation cross-entropy (more
    confident and right) wins."""

    key: tuple[float, float] = (-1.0, -math.inf)
    epoch: int = 0
    state: dict = field(default_factory=dict)
    bad_epochs: int = 0  # epochs since it last improved

    def update(self, model: nn.Module, epoch: int, val_acc: float, val_loss: float) -> None:
        if (val_acc, -val_loss) > self.key:
            self.key, self.epoch = (val_acc, -val_loss), epoch
            self.state = copy.deepcopy(model.state_dict())
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1


def planned_epochs(o: TrainOptions) -> int:
    """The most epochs a fit with `o` runs: `epochs`, or the `max_epochs` cap of epochs: auto
    (which stops after `patience` epochs without improvement)."""
    return o.max_epochs if o.epochs == "auto" else o.epochs


def _check_data(o: TrainOptions, data, desc: str) -> None:
    """Refuse options that cannot work with this data or this many processes."""
    world = distributed.world_size()
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


def _set_up(model: nn.Module, data, o: TrainOptions, loss_fn) -> _Loop:
    """Device, DDP wrapper, batches, optimizer and schedule, loss: everything before epoch 1."""
    rank, world = distributed.rank(), distributed.world_size()
    device = resolve_device(o.device)
    model.to(device)
    net = distributed.wrap(model, device)
    x_train = data.x_train
    batches = TrainBatches(
        x_train, data.y_train, device, rank=rank, world=world, max_shift=o.augment_shift,
        workers=loader_workers(o.num_workers, device, x_train.nbytes,
                               distributed.local_world_size()))
    epochs = planned_epochs(o)
    steps = max(1, math.ceil(len(x_train) / o.batch_size))
    opt, sched, per_step = _optimizer(model, o, steps, epochs)
    ce = nn.CrossEntropyLoss(label_smoothing=o.label_smoothing)
    # One generator for batches and augmentation, seeded alike on every rank: every rank draws
    # the same global batches (see compress.batches).
    return _Loop(
        model=model, net=net, device=device, amp=MixedPrecision(o.precision, device),
        batches=batches, opt=opt, sched=sched, per_step=per_step,
        loss_fn=loss_fn or (lambda logits, target, _x: ce(logits, target)),
        gen=torch.Generator().manual_seed(o.seed),
        weights=[p for p in model.parameters() if p.ndim > 1], epochs=epochs)


def _train_epoch(loop: _Loop, o: TrainOptions, n: int, spatial_dims: int, index: int) -> float:
    """One pass over the training split; the mean training loss over every rank's samples."""
    loop.net.train()
    if getattr(o, "freeze_epochs", 0):  # train the new head alone first (after train(): the
        finetune.freeze_backbone(loop.model, index < o.freeze_epochs)  # frozen BN stays eval)
    plan = epoch_plan(n, o.batch_size, loop.gen, distributed.world_size(), o.augment_shift,
                      spatial_dims)
    # Summed on the device: reading the loss at every step would wait for the GPU.
    total = torch.zeros((), dtype=torch.float64, device=loop.device)
    count = 0
    for xb, yb in loop.batches.epoch(plan):
        with loop.amp.autocast():
            logits = loop.net(xb)
            loss = loop.loss_fn(logits, yb, xb)
        if o.l1:
            loss = loss + o.l1 * sum(w.abs().sum() for w in loop.weights)
        loop.opt.zero_grad(set_to_none=True)
        loop.amp.step(loss, loop.opt)
        if loop.per_step:
            loop.sched.step()
        total += loss.detach().double() * len(yb)
        count += len(yb)
    distributed.sync_buffers(loop.model)
    total, count = distributed.all_reduce_sum([float(total), count])
    return total / max(count, 1)


def _step_schedule(loop: _Loop, o: TrainOptions, val_acc: float) -> None:
    if loop.sched is not None and not loop.per_step:
        loop.sched.step(val_acc) if o.schedule == "plateau" else loop.sched.step()


def _check_finite(train_loss: float, epoch: int, desc: str) -> None:
    if not math.isfinite(train_loss):
        raise distributed.collective_error(StageError(
            f"{desc}: training diverged at epoch {epoch} (loss {train_loss}); "
            "lower lr or use a schedule with warm-up (onecycle)"))


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

    With `epochs: auto` it runs until `patience` epochs bring no improvement, at most
    `max_epochs`; either way the best epoch's weights are kept.
    """
    from tqdm.auto import tqdm

    seed_everything(o.seed)
    _check_data(o, data, desc)
    loop = _set_up(model, data, o, loss_fn)
    n, spatial_dims = len(data.x_train), data.x_train.ndim - 2
    best = _Best(state=copy.deepcopy(model.state_dict()))
    history, stopped = [], False
    t0, cpu0 = time.perf_counter(), time.process_time()
    # disable=None: tqdm draws only on a terminal, so CI logs are not flooded with redraws.
    bar = tqdm(range(loop.epochs), desc=desc, disable=None if progress else True, leave=False,
               unit="epoch")
    plain = (PlainProgress(desc, loop.epochs, PLAIN_PROGRESS_EVERY_S)
             if progress and not _terminal(sys.stderr) else None)
    for index in bar:
        epoch = index + 1
        train_loss = _train_epoch(loop, o, n, spatial_dims, index)
        val_acc, val_loss = _evaluate(model, data.x_val, data.y_val, loop.device)
        _step_schedule(loop, o, val_acc)
        _check_finite(train_loss, epoch, desc)
        history.append({"epoch": epoch, "train_loss": round(train_loss, 6),
                        "val_loss": round(val_loss, 6), "val_accuracy_pct": val_acc})
        bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.2f}%")
        best.update(model, epoch, val_acc, val_loss)
        stopped = o.patience is not None and best.bad_epochs >= o.patience
        if plain is not None:
            plain.epoch(epoch, train_loss, val_acc, stopped)
        if stopped:
            break
    bar.close()
    device = loop.device
    del loop  # DDP's gradient hooks go with its wrapper; a later fit() wraps the model afresh
    model.load_state_dict(best.state)
    wall = time.perf_counter() - t0
    cpu = distributed.all_reduce_sum([time.process_time() - cpu0])[0]
    return FitResult(
        state_dict={k: v.detach().cpu() for k, v in best.state.items()}, best_epoch=best.epoch,
        epochs_run=len(history), best_val_accuracy_pct=best.key[0], history=history,
        wall_time_s=wall, stopped_early=stopped, cpu_time_s=cpu,
        device=str(device), precision=o.precision,
        world_size=distributed.world_size(),
    )


def last_epoch_warning(result: FitResult) -> str | None:
    """What to say when the best validation epoch is the last one that ran: the model was still
    improving when training ended, so more epochs would likely give a better one."""
    if result.best_epoch != result.epochs_run or result.stopped_early:
        return None
    return (f"the best validation epoch is the last one (epoch {result.best_epoch} of "
            f"{result.epochs_run}): the model was still improving when training ended; train "
            "longer (more `epochs`, or `epochs: auto`)")


def fit_metrics(model, data, result, who: str = "model", o: TrainOptions | None = None,
                progress: bool = True) -> dict:
    """The metrics every training stage reports for the model it trained: a warning when it was
    still improving at the last epoch, and the plain baseline beside it (tables: a standardised
    LogisticRegression; images and sequences: a small CNN; warns when below it). `o` gives the
    baseline's switch (`baseline: false` skips it)."""
    device = next(model.parameters()).device
    test_acc = accuracy_pct(predict_logits(model, data.x_test, device), data.y_test)
    warning = last_epoch_warning(result)
    if warning:
        print(f"warning: {who}: {warning}", file=sys.stderr, flush=True)
    return {
        "test_accuracy_pct": test_acc,
        "val_accuracy_pct": result.best_val_accuracy_pct,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "best_epoch_is_last": result.best_epoch == result.epochs_run and not result.stopped_early,
        "last_epoch_warning": warning,
        "params": count_params(model),
        "train_wall_time_s": round(result.wall_time_s, 3),
        "train_cpu_time_s": round(result.cpu_time_s, 3),
        "device": result.device,
        "precision": result.precision,
        "world_size": result.world_size,
        "train_samples": len(data.x_train),
        "test_samples": len(data.x_test),
        **baseline_metrics(data, test_acc, who, fit, enabled=o is None or o.baseline,
                           progress=progress),
    }
