"""Which samples each optimizer step sees, and how they reach the device.

Each epoch draws one seeded permutation and cuts it into global batches of `batch_size`. With
several processes each rank takes every world_size-th sample of a global batch: exactly what
DistributedSampler with set_epoch gives, so the samples of a step do not depend on how many
processes share it. Augmentation offsets are drawn for the whole global batch on every rank for
the same reason (and so that every rank's generator stays in step).

How a batch is gathered (`workers`, see `loader_workers` for the automatic choice):
- 0: by index in the training process, from tensors that already live on the device (the
  whole split is copied to the GPU once). On a CPU this is several times faster than a
  DataLoader, which only adds a collate and a queue per batch to the same cores.
- N > 0: by N DataLoader worker processes, into pinned memory on CUDA, copied to the GPU
  without blocking so the copy overlaps the previous step: for splits too large for the GPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch
from torch import nn

# A training split up to this size is copied to the GPU whole; above it, DataLoader workers.
DEVICE_RESIDENT_MAX_BYTES = 1 << 30


def loader_workers(requested: int | None, device: torch.device, split_bytes: int,
                   local_processes: int = 1) -> int:
    """`requested`, or the automatic choice: 0 on the CPU and for splits that fit on the GPU
    (<= 1 GiB), else up to 4 workers from this process's share of the machine's cores."""
    if requested is not None:
        return requested
    if device.type != "cuda" or split_bytes <= DEVICE_RESIDENT_MAX_BYTES:
        return 0
    return max(1, min(4, (os.cpu_count() or 1) // local_processes - 1))


def shift(x: torch.Tensor, max_shift: int, gen: torch.Generator | None = None,
          offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Translate each sample by a random offset in [-max_shift, max_shift] per spatial axis
    (drawn from `gen`, or given as `offsets` in [0, 2 * max_shift]), filling with the edge value
    (background for digits, the signal's end for sequences)."""
    spatial = x.ndim - 2
    pad = [max_shift] * (2 * spatial)
    xp = nn.functional.pad(x, pad, mode="replicate")
    offs = offsets if offsets is not None else torch.randint(
        0, 2 * max_shift + 1, (len(x), spatial), generator=gen)
    out = torch.empty_like(x)
    size = x.shape[2:]
    for key in torch.unique(offs, dim=0):
        idx = (offs == key).all(1).nonzero().squeeze(1).to(x.device)
        sl = [slice(None), slice(None)] + [
            slice(int(k), int(k) + n) for k, n in zip(key.tolist(), size, strict=True)
        ]
        out[idx] = xp[idx][tuple(sl)]
    return out


Plan = list[tuple[torch.Tensor, torch.Tensor | None]]


def epoch_plan(n: int, batch_size: int, gen: torch.Generator, world: int = 1,
               max_shift: int = 0, spatial: int = 1) -> Plan:
    """One epoch's global batches as (sample indices, shift offsets or None), drawn from `gen`
    in the same order at every world size."""
    perm = torch.randperm(n, generator=gen)
    plan = []
    for i in range(math.ceil(n / batch_size)):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        if len(idx) < world or (len(idx) < 2 * world and n >= 2):
            continue  # a rank with fewer than two samples breaks BatchNorm statistics
        offs = None
        if max_shift:
            offs = torch.randint(0, 2 * max_shift + 1, (len(idx), spatial), generator=gen)
        plan.append((idx, offs))
    return plan


class _Gather(torch.utils.data.Dataset):
    """Item = a whole batch, gathered by fancy indexing (a collate of single samples is slower)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: torch.Tensor):
        return self.x[idx], self.y[idx]


class TrainBatches:
    """This rank's batches of the training split, on `device`, epoch after epoch."""

    def __init__(self, x, y, device: torch.device, workers: int = 0, rank: int = 0,
                 world: int = 1, max_shift: int = 0):
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
        if workers == 0:
            self.x, self.y = self.x.to(device), self.y.to(device)
        self.device, self.workers = device, workers
        self.rank, self.world, self.max_shift = rank, world, max_shift

    def epoch(self, plan: Plan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, targets) per step of `plan` (see `epoch_plan`), this rank's share only."""
        r, w = self.rank, self.world
        local = [(idx[r::w], None if offs is None else offs[r::w]) for idx, offs in plan]
        if self.workers == 0:
            batches = ((self.x[i.to(self.x.device)], self.y[i.to(self.y.device)])
                       for i, _ in local)
        else:
            loader = torch.utils.data.DataLoader(
                _Gather(self.x, self.y), batch_size=None, sampler=[i for i, _ in local],
                num_workers=self.workers, pin_memory=self.device.type == "cuda")
            batches = ((xb.to(self.device, non_blocking=True),
                        yb.to(self.device, non_blocking=True)) for xb, yb in loader)
        for (xb, yb), (_, offs) in zip(batches, local, strict=True):
            if offs is not None:
                xb = shift(xb, self.max_shift, offsets=offs)
            yield xb, yb
