"""Where and in what precision a model trains: the device (with a clear error where CUDA is
missing) and mixed precision (autocast, plus a gradient scaler for fp16).

Weights, optimizer state and checkpoints stay fp32 in every precision: autocast only lowers the
precision of the forward pass's matrix products, which is where the time goes.
"""

from __future__ import annotations

import contextlib
import os

import torch

from compress.errors import StageError
from compress.trainer.options import Device, Precision  # noqa: F401  (re-exported)

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def runtime_problem(device: str, precision: str) -> str | None:
    """Why `device` and `precision` cannot train on this machine, in one line; None if they can."""
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        return ("device: cuda was asked for but no CUDA device is available; "
                "use device: auto or device: cpu")
    on_cuda = cuda and device != "cpu"
    if precision == "fp16" and not on_cuda:
        return ("precision: fp16 needs a CUDA device (autocast and its gradient scaler are "
                "GPU features); on the CPU use precision: bf16 or fp32")
    if precision == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
        return "precision: bf16 is not supported by this GPU; use precision: fp16 or fp32"
    return None


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The torch device for `name` (auto = CUDA if present); under DDP, the GPU of this process's
    local rank. Raises StageError, one line, when CUDA is asked for and absent."""
    problem = runtime_problem(name, "fp32")
    if problem:
        raise StageError(problem)
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank is None:
        # torchrun's variable; unset (rank 0) in a single process.
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise StageError(f"local rank {local_rank} has no GPU of its own ({count} visible); "
                         f"start at most {count} processes per machine")
    return torch.device("cuda", local_rank)


class MixedPrecision:
    """Autocast for the forward pass and loss; for fp16 a GradScaler, since fp16 gradients
    underflow without one (bf16 has fp32's range and needs none)."""

    def __init__(self, precision: str, device: torch.device):
        problem = runtime_problem(device.type, precision)
        if problem:
            raise StageError(problem)
        self.precision = precision
        self.device_type = device.type
        self.dtype = _DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()  # fp32: not even the context manager's cost
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward pass and optimizer step (scaled and unscaled again for fp16)."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
