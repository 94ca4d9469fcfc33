"""Distillation loss math and the hint (feature) distiller."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from compress.errors import ConfigError
from compress.models import ResNetSpec, build_model
from compress.trainer.distillation import Distiller, DistillOptions, HintConfig, distillation_loss


def _logits(seed: int, n: int = 16, k: int = 10) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 3


def test_alpha_zero_is_plain_cross_entropy():
    # setup
    s, t, y = _logits(0), _logits(1), torch.arange(16) % 10
    # execute
    loss = distillation_loss(s, t, y, temperature=4.0, alpha=0.0)
    # assert
    assert torch.allclose(loss, F.cross_entropy(s, y))


def test_alpha_one_is_t_squared_kl_between_softened_distributions():
    # setup
    s, t, y, temp = _logits(0), _logits(1), torch.zeros(16, dtype=torch.long), 3.0
    p_t = torch.softmax(t / temp, 1)
    manual = (p_t * (torch.log(p_t) - torch.log_softmax(s / temp, 1))).sum(1).mean() * temp**2
    # execute
    loss = distillation_loss(s, t, y, temperature=temp, alpha=1.0)
    # assert
    assert torch.allclose(loss, manual, atol=1e-5)


def test_mix_weights_both_terms_and_matching_teacher_costs_nothing():
    # setup
    s, t, y = _logits(0), _logits(1), torch.arange(16) % 10
    kd = distillation_loss(s, t, y, 2.0, 1.0)
    ce = distillation_loss(s, t, y, 2.0, 0.0)
    # execute
    mixed = distillation_loss(s, t, y, 2.0, 0.7)
    same = distillation_loss(s, s, y, 2.0, 1.0)
    # assert
    assert torch.allclose(mixed, 0.7 * kd + 0.3 * ce, atol=1e-5)
    assert abs(float(same)) < 1e-6


def test_t_squared_keeps_soft_gradients_on_scale():
    # setup: at high T the soft gradient is ~ (s - t) / (K T^2); the T^2 factor undoes that
    t, y = _logits(1), torch.zeros(16, dtype=torch.long)
    norms = []
    for temp in (4.0, 16.0):
        s = _logits(0).requires_grad_(True)
        # execute
        distillation_loss(s, t, y, temp, 1.0).backward()
        norms.append(float(s.grad.norm()))
    # assert: without T^2 the ratio would be ~16; with it, of order 1
    assert 0.25 < norms[1] * 4 / norms[0] < 4 and math.isfinite(norms[0])


def _resnets():
    teacher = build_model(ResNetSpec(width=16, stages=2), [1, 8, 8], 10)
    student = build_model(ResNetSpec(width=8, stages=2), [1, 8, 8], 10)
    return teacher, student


def test_hint_adds_a_trainable_projection_and_a_feature_term():
    # setup
    teacher, student = _resnets()
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    plain = Distiller(student, teacher, x, DistillOptions())
    hinted = Distiller(student, teacher, x, DistillOptions(),
                       HintConfig(student_layer="blocks.1", teacher_layer="blocks.1", weight=5.0))
    # execute
    loss_plain = plain.loss(plain(x), y, x)
    loss_hint = hinted.loss(hinted(x), y, x)
    # assert: 16 student channels projected to the teacher's 32; the MSE term is added
    assert hinted.proj.weight.shape[:2] == (32, 16)
    assert any(p is hinted.proj.weight for p in hinted.parameters())
    assert not any(p is next(teacher.parameters()) for p in hinted.parameters())
    assert float(loss_hint.detach()) > float(loss_plain.detach())


@pytest.mark.parametrize("teacher_spec,layer", [
    ({"arch": "rnn", "cell": "gru", "hidden": 24}, "rnn"),
    ({"arch": "rnn", "cell": "lstm", "hidden": 24}, "rnn"),
    ({"arch": "transformer", "width": 24, "layers": 1, "heads": 2, "patch": 4}, "layers.0"),
])
def test_hint_from_a_sequence_teacher_to_a_cnn_student(teacher_spec, layer):
    # setup: MNIST-1D-like (1, 40) sequences; a GRU returns (output, state), a transformer
    # layer (batch, steps, features): both are matched as (batch, features, steps)
    teacher = build_model(teacher_spec, [1, 40], 10)
    student = build_model(ResNetSpec(width=8, stages=1), [1, 40], 10)
    x, y = torch.randn(4, 1, 40), torch.arange(4)
    # execute
    hinted = Distiller(student, teacher, x, DistillOptions(),
                       HintConfig(student_layer="blocks.0", teacher_layer=layer))
    loss = hinted.loss(hinted(x), y, x)
    loss.backward()
    # assert: 8 student channels projected to the teacher's 24 features, steps pooled to match
    assert hinted.proj.weight.shape[:2] == (24, 8)
    assert hinted.proj.weight.grad is not None and torch.isfinite(loss)


def test_hint_on_a_missing_layer_names_the_valid_ones():
    # setup
    teacher, student = _resnets()
    # execute / assert
    with pytest.raises(ConfigError, match="student_layer 'blocks.9'.*choose one of: stem"):
        Distiller(student, teacher, torch.randn(2, 1, 8, 8), DistillOptions(),
                  HintConfig(student_layer="blocks.9", teacher_layer="blocks.1"))
