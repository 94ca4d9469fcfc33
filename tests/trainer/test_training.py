"""The shared training loop: learns, keeps the best epoch, is reproducible, stops early."""

from __future__ import annotations

import pytest
import torch

from compress.data import DigitsData, load_dataset
from compress.models import build_model
from compress.trainer.training import TrainOptions, fit

MLP = {"arch": "mlp", "hidden": [32]}


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DigitsData())


def _fit(data, **kw):
    torch.manual_seed(0)
    model = build_model(MLP, data.input_shape, data.num_classes)
    opts = TrainOptions(**{"epochs": 3, "batch_size": 128, "lr": 0.01, "device": "cpu", **kw})
    return model, fit(model, data, opts, progress=False)


def test_fit_learns_digits(digits):
    # execute
    _, res = _fit(digits, epochs=5)
    # assert
    assert res.best_val_accuracy_pct > 85
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_same_seed_same_weights(digits):
    _, a = _fit(digits)
    _, b = _fit(digits)
    for k in a.state_dict:
        torch.testing.assert_close(a.state_dict[k], b.state_dict[k], rtol=0, atol=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("schedule", ["none", "step", "cosine", "onecycle", "plateau"])
def test_every_optimizer_and_schedule_trains(digits, optimizer, schedule):
    lr = 0.2 if optimizer == "sgd" else 0.01
    _, res = _fit(digits, epochs=2, optimizer=optimizer, schedule=schedule, l1=1e-5,
                  label_smoothing=0.1, patience=None, lr=lr)
    assert res.epochs_run == 2 and res.best_val_accuracy_pct > 20


def test_early_stopping_keeps_the_best_epoch(digits):
    # setup: a learning rate so high that validation accuracy cannot keep improving
    model, res = _fit(digits, epochs=40, lr=5.0, optimizer="sgd", schedule="none", patience=2)
    # assert
    assert res.stopped_early and res.epochs_run < 40
    best = max(h["val_accuracy_pct"] for h in res.history)
    assert res.best_val_accuracy_pct == best
    assert res.history[res.best_epoch - 1]["val_accuracy_pct"] == best
