"""DDP inside a process group that compress.launch (or torchrun) set up: which rank this is,
the model wrapped in DistributedDataParallel, sums over ranks, rank 0's buffers everywhere.
Starting and joining processes, and running the non-training stages on rank 0, is the runner's
side: compress.launch.

Without a process group every helper here is a no-op, so one process trains as it always did.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TypeVar

from compress.errors import CompressError, MirroredError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def _dist():
    import torch.distributed as dist

    return dist


def is_distributed() -> bool:
    # No process group exists in a process that never imported torch.distributed.
    dist = sys.modules.get("torch.distributed")
    return (dist is not None and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def rank() -> int:
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    return _dist().get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its machine: which GPU it owns."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def local_world_size() -> int:
    """Processes on this machine (they share its cores and GPUs)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world_size())) if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` on every rank (pickled: only for our own small results, never data)."""
    if not is_distributed():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        _dist().barrier()


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sums over every rank (float64, on the CPU through the CPU backend)."""
    if not is_distributed():
        return list(values)
    import torch

    t = torch.tensor(values, dtype=torch.float64)
    _dist().all_reduce(t)
    return t.tolist()


def sync_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them before
    each forward, but the last training step leaves each rank with its own; evaluation and the
    kept weights must be the same everywhere."""
    if is_distributed():
        for b in module.buffers():
            _dist().broadcast(b, src=0)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel when several processes train, else itself."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def collective_error(err: CompressError) -> CompressError:
    """The error to raise when every rank meets `err` at the same point: itself on rank 0, a
    silent stand-in with the same exit code elsewhere, so the message is printed once."""
    return err if is_main() else MirroredError(err.exit_code)
