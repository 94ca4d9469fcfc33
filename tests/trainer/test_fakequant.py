"""Fake quantization for QAT: BN folding is exact, weights land on ORT's int8 grid."""

from __future__ import annotations

import torch
from torch import nn

from compress.models import ResNetSpec, build_model
from compress.trainer import fakequant


def _model():
    torch.manual_seed(0)
    model = build_model(ResNetSpec(width=8, stages=2), [1, 8, 8], 10)
    # give batch norm non-trivial statistics
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 1, 8, 8) * 2 + 1)
    return model.eval()


def test_folding_batch_norm_keeps_outputs():
    # setup
    model, x = _model(), torch.randn(5, 1, 8, 8)
    # execute
    fused = fakequant.fold_batch_norm(model)
    # assert
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(fused(x), model(x), atol=1e-4)


def test_weights_land_on_the_per_channel_int8_grid():
    # setup
    w = torch.randn(6, 3, 3, 3)
    # execute
    q = fakequant.WeightFakeQuant()(w)
    # assert: q / scale is an integer in [-127, 127], the largest weight kept exactly
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    steps = q / scale
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert steps.abs().max() <= 127 + 1e-3
    assert torch.allclose(q.abs().amax(dim=(1, 2, 3)), w.abs().amax(dim=(1, 2, 3)))


def test_activation_range_always_contains_zero():
    # setup
    fq = fakequant.ActivationFakeQuant("uint8").train()
    # execute
    fq(torch.rand(64) + 1.0)  # all positive: range must still start at 0
    # assert
    assert float(fq.lo) == 0.0 and float(fq.hi) >= 1.0


def test_prepare_then_finalize_gives_a_plain_model_with_grid_weights():
    # setup
    fused = fakequant.fold_batch_norm(_model())
    keys = set(fused.state_dict())
    # execute
    handles = fakequant.prepare(fused)
    fused.train()
    fused(torch.randn(16, 1, 8, 8))  # observers see data
    fakequant.finalize(fused.eval(), handles)
    # assert
    assert set(fused.state_dict()) == keys
    conv = next(m for m in fused.modules() if isinstance(m, nn.Conv2d))
    w = conv.weight.detach()
    steps = w / (w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127)
    assert torch.allclose(steps, steps.round(), atol=1e-3)
