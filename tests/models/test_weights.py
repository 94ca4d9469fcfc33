"""`weights:` for any family: strict loading, the classifier swap, what the checkpoint and the
cache key record, and every bad weights file refused in one line."""

from __future__ import annotations

import pytest
import torch

from compress.errors import ArtifactError
from compress.models import MobileNetV2Spec, ResNetSpec, build_model
from compress.models.weights import load_weights
from tests.models.tv_mobilenet import state_dict


@pytest.fixture
def tv_file(tmp_path):
    """A torchvision-layout width-0.25 MobileNetV2 with an ImageNet-sized (1000) classifier."""
    path = tmp_path / "mnv2.pth"
    torch.save(state_dict(width_mult=0.25, classes=1000), path)
    return path


def test_a_classifier_of_another_class_count_is_reinitialised_and_said(tv_file, capsys):
    # setup
    sd = state_dict(width_mult=0.25, classes=1000)
    torch.manual_seed(0)
    model = build_model(MobileNetV2Spec(width_mult=0.25), [3, 32, 32], 10)
    fresh_head = model.classifier[1].weight.detach().clone()
    # execute
    record = load_weights(model, tv_file, desc="teacher")
    # assert: the backbone is the file's, the 10-class head keeps its fresh initialisation
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd.items() if not k.startswith("classifier"))
    assert torch.equal(model.classifier[1].weight, fresh_head)
    assert record["reinitialised"] == ["classifier.1.weight", "classifier.1.bias"]
    assert len(record["sha256"]) == 64
    assert "classifier.1 re-initialised for 10 classes (the weights have 1000)" in (
        capsys.readouterr().err)


def test_a_compress_checkpoint_is_a_weights_file_too(tmp_path):
    # setup: a checkpoint-shaped payload around a resnet's state dict
    src = build_model(ResNetSpec(width=8, stages=2), [1, 8, 8], 10)
    path = tmp_path / "model.pt"
    torch.save({"format": 1, "model": {"arch": "resnet"}, "state_dict": src.state_dict()}, path)
    dst = build_model(ResNetSpec(width=8, stages=2), [1, 8, 8], 10)
    # execute
    record = load_weights(dst, path)
    # assert
    assert record["reinitialised"] == []
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(),
                                                 dst.state_dict().values(), strict=True))


def test_weights_of_another_architecture_name_the_first_missing_and_unexpected_keys(tv_file):
    # setup
    model = build_model(ResNetSpec(width=8, stages=2), [3, 32, 32], 10)
    # execute / assert
    with pytest.raises(ArtifactError, match=r"missing \d+ key\(s\), first 'stem.0.weight'; "
                       r"unexpected \d+ key\(s\), first 'features.0.0.weight'"):
        load_weights(model, tv_file)


def test_a_truncated_file_is_refused(tv_file, tmp_path):
    # setup
    cut = tmp_path / "cut.pth"
    cut.write_bytes(tv_file.read_bytes()[:5000])
    # execute / assert
    with pytest.raises(ArtifactError, match="truncated or damaged"):
        load_weights(build_model(MobileNetV2Spec(width_mult=0.25), [3, 32, 32], 10), cut)


def test_a_pickled_module_is_refused_by_weights_only(tmp_path):
    # setup
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    # execute / assert
    with pytest.raises(ArtifactError, match=r"weights_only=True\) refuses it.*state_dict\(\)"):
        load_weights(build_model(MobileNetV2Spec(width_mult=0.25), [3, 32, 32], 10), path)


def test_width_mult_that_does_not_match_the_weights_is_refused(tv_file):
    # setup: the file is width 0.25, the model width 0.5
    model = build_model(MobileNetV2Spec(width_mult=0.5), [3, 32, 32], 10)
    # execute / assert
    with pytest.raises(ArtifactError, match=r"'features.0.0.weight' is \[8, 3, 3, 3\] in the "
                       r"weights but \[16, 3, 3, 3\].*width_mult"):
        load_weights(model, tv_file)


def test_a_3_channel_net_on_1_channel_data_asks_for_channels_3(tv_file):
    # setup
    model = build_model(MobileNetV2Spec(width_mult=0.25), [1, 32, 32], 10)
    # execute / assert
    with pytest.raises(ArtifactError, match=r"3-channel inputs but the data has 1.*channels: 3"):
        load_weights(model, tv_file)


def test_the_cache_key_follows_the_weights_bytes(tv_file):
    # setup
    from compress.stages.train import TrainConfig

    cfg = TrainConfig(id="t", model={"arch": "mobilenet_v2", "width_mult": 0.25,
                                     "weights": str(tv_file)})
    before = cfg.hash_payload()
    # execute: same path, new bytes
    torch.save(state_dict(width_mult=0.25, classes=1000, seed=1), tv_file)
    after = cfg.hash_payload()
    # assert
    assert before["weights_sha256"] != after["weights_sha256"]


def test_shipped_metadata_names_the_weights_file_not_the_build_path():
    # setup
    from compress.onnx.contract import portable_model

    spec = {"arch": "mobilenet_v2", "width_mult": 1.0, "weights": "/home/me/cache/mnv2.pth"}
    # execute
    shipped = portable_model(spec)
    # assert
    assert shipped["weights"] == "mnv2.pth" and portable_model({"arch": "mlp"}) == {"arch": "mlp"}
