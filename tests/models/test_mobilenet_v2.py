"""MobileNetV2 in plain PyTorch: torchvision's state dict layout loads key for key, and the
network computes what torchvision's does with those tensors."""

from __future__ import annotations

import pytest
import torch

from compress.models import MobileNetV2Spec, build_model, count_params
from tests.models.tv_mobilenet import reference_forward, state_dict


def test_torchvision_keys_load_strict_and_give_the_reference_outputs():
    # setup: a width-0.25 torchvision-layout state dict of random tensors
    sd = state_dict(width_mult=0.25, classes=10)
    model = build_model(MobileNetV2Spec(width_mult=0.25), [3, 32, 32], 10)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # execute
    result = model.load_state_dict(sd, strict=True)
    with torch.no_grad():
        ours = model.eval()(x)
        ref = reference_forward(sd, x, width_mult=0.25)
    # assert: every key used, none left over, the same logits
    assert not result.missing_keys and not result.unexpected_keys
    assert set(model.state_dict()) == set(sd)
    assert ours.shape == (4, 10)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_full_width_has_torchvision_parameter_count():
    # setup / execute: torchvision's mobilenet_v2() has 3,504,872 parameters (1000 classes)
    model = build_model(MobileNetV2Spec(), [3, 64, 64], 1000)
    # assert
    assert count_params(model) == 3_504_872
    assert set(model.state_dict()) == set(state_dict(width_mult=1.0))


def test_mobilenet_refuses_inputs_that_are_not_images():
    # setup
    from compress.errors import ConfigError

    # execute / assert
    with pytest.raises(ConfigError, match="takes images"):
        build_model(MobileNetV2Spec(), [1, 40], 10)
