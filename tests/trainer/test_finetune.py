"""Fine-tuning recipe: the head alone first (freeze_epochs), the backbone at a lower lr."""

from __future__ import annotations

import torch

from compress.models import ResNetSpec, build_model
from compress.stages.train import TrainConfig
from compress.trainer.finetune import freeze_backbone, param_groups


def test_backbone_lr_scale_puts_the_backbone_in_its_own_groups():
    # setup
    model = build_model(ResNetSpec(width=8, stages=2), [1, 8, 8], 10)
    cfg = TrainConfig(id="t", lr=0.01, backbone_lr_scale=0.1)
    # execute
    groups = param_groups(model, cfg, cfg.lr)
    # assert: the head (last Linear) at lr, every other parameter at lr / 10, none lost
    head = {id(p) for p in model.head.parameters()}
    for g in groups:
        ids = {id(p) for p in g["params"]}
        assert g["lr"] == (0.01 if ids <= head else 0.001) and (ids <= head or not ids & head)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_freeze_epochs_train_the_head_only(monkeypatch):
    # setup: one frozen epoch out of one
    from compress.data import DigitsData, load_dataset
    from compress.trainer.training import fit

    data = load_dataset(DigitsData())
    model = build_model(ResNetSpec(width=8, stages=1), [1, 8, 8], 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(id="t", epochs=1, freeze_epochs=1, batch_size=256, device="cpu",
                      patience=None)
    # execute
    fit(model, data, cfg, progress=False)
    # assert: only the head moved; the backbone's BatchNorm statistics stayed too
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"head.weight", "head.bias"}


def test_unfreezing_gives_every_parameter_back_its_gradient():
    # setup
    model = build_model(ResNetSpec(width=8, stages=1), [1, 8, 8], 10)
    # execute
    freeze_backbone(model, True)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    freeze_backbone(model, False)
    # assert
    assert frozen and "head.weight" not in frozen
    assert all(p.requires_grad for p in model.parameters())
