"""Fake quantization for quantization-aware fine-tuning, matched to what ONNX Runtime's static
quantizer does afterwards, so the int8 model ORT builds is the one that was trained:

- batch norm is folded into the preceding conv/linear first (ORT folds it before quantizing);
- weights: per output channel, symmetric int8 in [-127, 127], scale = max|w| / 127 (ORT's
  per-channel QInt8 weights), with a straight-through gradient;
- activations entering each conv/linear: per tensor, asymmetric uint8 (or symmetric-range int8),
  range tracked by an exponential moving average of batch min/max and always containing 0, as
  ORT's calibrated ranges do.

After training, `finalize` bakes the fake-quantized weights in (they lie exactly on the int8
grid, so ORT's quantization of them is lossless) and removes the activation observers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

QUANTIZED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of `model` (a torch.fx GraphModule) with every BN folded into its conv/linear."""
    from torch.fx.experimental.optimization import fuse

    return fuse(model.eval())


class WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric int8 fake quantization of a weight (a parametrization)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, w.ndim))
        scale = (w.detach().abs().amax(dim=dims) / 127.0).clamp(min=1e-8).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


class ActivationFakeQuant(nn.Module):
    """Per-tensor activation fake quantization with an EMA-tracked range."""

    def __init__(self, dtype: str = "uint8", momentum: float = 0.01):
        super().__init__()
        self.qmin, self.qmax = (0, 255) if dtype == "uint8" else (-128, 127)
        self.momentum = momentum
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            lo = x.detach().min().clamp(max=0)
            hi = x.detach().max().clamp(min=0)
            if not bool(self.seen):
                self.lo.copy_(lo)
                self.hi.copy_(hi)
                self.seen.fill_(True)
            else:
                self.lo.lerp_(lo, self.momentum)
                self.hi.lerp_(hi, self.momentum)
        if self.qmin < 0:  # int8 activations: ORT uses a range symmetric around 0
            bound = torch.maximum(-self.lo, self.hi)
            lo, hi = -bound, bound
        else:
            lo, hi = self.lo, self.hi
        scale = float(((hi - lo) / (self.qmax - self.qmin)).clamp(min=1e-8))
        zero = int(round(self.qmin - float(lo) / scale))
        zero = max(self.qmin, min(self.qmax, zero))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, self.qmin, self.qmax)


def prepare(model: nn.Module, activation_type: str = "uint8") -> list:
    """Add weight and input-activation fake quantization to every conv/linear, in place.
    Returns the hook handles that `finalize` removes."""
    handles = []
    for module in list(model.modules()):
        if isinstance(module, QUANTIZED_TYPES):
            parametrize.register_parametrization(module, "weight", WeightFakeQuant())
            module.input_fq = ActivationFakeQuant(activation_type)
            handles.append(module.register_forward_pre_hook(
                lambda m, args: (m.input_fq(args[0]), *args[1:])))
    return handles


def finalize(model: nn.Module, handles: list) -> nn.Module:
    """Bake the int8-grid weights in and drop the observers: a plain float model again."""
    for h in handles:
        h.remove()
    for module in list(model.modules()):
        if isinstance(module, QUANTIZED_TYPES) and parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            del module.input_fq
    return model
