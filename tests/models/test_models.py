"""Model registry: every family builds for 1-D and 2-D inputs and rebuilds from its spec."""

from __future__ import annotations

import pytest
import torch

from compress.models import ResNetSpec, build_model, count_params, parse_model_spec
from compress.models.resnet import ResBlockSpec


@pytest.mark.parametrize("shape", [[1, 8, 8], [1, 40], [3, 16]])
@pytest.mark.parametrize("spec", [{"arch": "mlp", "hidden": [16, 8]},
                                  {"arch": "resnet", "width": 4, "stages": 2}])
def test_models_build_for_each_input_rank(spec, shape):
    # execute
    model = build_model(spec, shape, 7).eval()
    out = model(torch.zeros(3, *shape))
    # assert
    assert out.shape == (3, 7)


def test_resnet_width_and_depth_change_parameter_count():
    small = count_params(build_model({"arch": "resnet", "width": 8}, [1, 8, 8], 10))
    wide = count_params(build_model({"arch": "resnet", "width": 16}, [1, 8, 8], 10))
    deep = count_params(build_model({"arch": "resnet", "width": 8, "blocks_per_stage": 2},
                                    [1, 8, 8], 10))
    assert wide > 3 * small and deep > small


def test_resnet_explicit_channels_rebuild_a_pruned_shape():
    # setup: what a pruned checkpoint would record: uneven, real channel counts
    spec = ResNetSpec(stem=5, blocks=[ResBlockSpec(mid=3, out=5), ResBlockSpec(mid=6, out=9,
                                                                                stride=2)])
    # execute
    model = build_model(spec.model_dump(), [1, 8, 8], 10)
    # assert
    assert model.blocks[0].conv1.out_channels == 3
    assert isinstance(model.blocks[0].shortcut, torch.nn.Identity)  # 5 -> 5, stride 1
    assert model.blocks[1].conv2.out_channels == 9 and model.head.in_features == 9
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_spec_round_trips_through_json():
    spec = parse_model_spec({"arch": "resnet", "width": 12, "kernel_size": 5})
    assert parse_model_spec(spec.model_dump(mode="json")) == spec


def test_state_dict_loads_into_a_rebuilt_model():
    a = build_model({"arch": "resnet", "width": 4}, [1, 40], 10)
    b = build_model({"arch": "resnet", "width": 4}, [1, 40], 10)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 40)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))
