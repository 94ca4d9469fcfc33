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


def test_without_a_terminal_each_epoch_prints_a_plain_line(digits, capsys, monkeypatch):
    # setup: stderr is captured (not a terminal); every epoch due for a line
    import compress.trainer.training as training

    monkeypatch.setattr(training, "PLAIN_PROGRESS_EVERY_S", 0.0)
    torch.manual_seed(0)
    model = build_model(MLP, digits.input_shape, digits.num_classes)
    opts = TrainOptions(epochs=2, batch_size=256, lr=0.01, device="cpu")
    # execute
    fit(model, digits, opts, progress=True, desc="teacher")
    # assert
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("teacher:")]
    assert [ln.split(",")[0] for ln in lines] == [f"teacher: epoch {e}/2" for e in (1, 2)]
    assert "val acc" in lines[-1] and "train loss" in lines[-1]


def test_plain_progress_is_throttled_but_keeps_the_first_and_last_epoch(capsys):
    from compress.trainer.training import PlainProgress

    progress = PlainProgress("student", epochs=50, every_s=3600)
    for epoch in range(1, 51):
        progress.epoch(epoch, 0.5, 90.0, stopping=False)
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["student: epoch 1/50", "student: epoch 50/50"]


def test_no_progress_prints_nothing(digits, capsys):
    _fit(digits, epochs=1)
    assert "epoch" not in capsys.readouterr().err


def test_a_run_still_improving_at_its_last_epoch_is_warned_about(digits, capsys):
    # setup: two epochs of a small MLP on digits: validation is still rising at the end
    from compress.trainer.training import fit_metrics

    model, res = _fit(digits, epochs=2, patience=None, lr=0.003)
    # execute
    m = fit_metrics(model, digits, res, who="teacher", o=TrainOptions(baseline=False))
    # assert: the metric, the recorded warning and the log line
    assert res.best_epoch == res.epochs_run == 2
    assert m["best_epoch_is_last"] is True
    assert m["last_epoch_warning"].startswith("the best validation epoch is the last one "
                                              "(epoch 2 of 2)")
    assert f"warning: teacher: {m['last_epoch_warning']}" in capsys.readouterr().err


def test_a_run_that_stopped_improving_is_not_warned_about(digits, capsys):
    # setup: a learning rate so high that validation stops improving, and patience stops it
    from compress.trainer.training import fit_metrics

    model, res = _fit(digits, epochs=40, lr=5.0, optimizer="sgd", schedule="none", patience=2)
    # execute
    m = fit_metrics(model, digits, res, who="teacher", o=TrainOptions(baseline=False))
    # assert
    assert m["best_epoch_is_last"] is False and m["last_epoch_warning"] is None
    assert "best validation epoch" not in capsys.readouterr().err


def test_epochs_auto_stops_when_validation_stops_improving_and_keeps_the_best(digits):
    # setup: epochs auto with a cap far away; the default schedule becomes plateau
    opts = TrainOptions(epochs="auto", max_epochs=60, patience=3, lr=0.05, batch_size=128,
                        device="cpu")
    torch.manual_seed(0)
    model = build_model(MLP, digits.input_shape, digits.num_classes)
    # execute
    res = fit(model, digits, opts, progress=False)
    # assert: it stopped by patience before the cap, three epochs after the best one, whose
    # weights the model holds
    from compress.trainer.training import _evaluate

    assert opts.schedule == "plateau"
    assert res.stopped_early and res.epochs_run < 60
    assert res.epochs_run == res.best_epoch + 3
    val_acc, _ = _evaluate(model, digits.x_val, digits.y_val, torch.device("cpu"))
    assert val_acc == res.best_val_accuracy_pct == max(h["val_accuracy_pct"]
                                                       for h in res.history)


def test_epochs_auto_stops_at_max_epochs(digits):
    # setup
    _, res = _fit(digits, epochs="auto", max_epochs=2, patience=5, lr=0.003)
    # assert: the cap holds
    assert res.epochs_run == 2 and not res.stopped_early


@pytest.mark.parametrize(("fields", "message"), [
    ({"epochs": 0}, r"not a number of epochs \(1 to 10000\) nor auto"),
    ({"epochs": "forever"}, "not a number of epochs"),
    ({"epochs": "auto", "patience": None}, "epochs: auto stops after `patience` epochs"),
    ({"epochs": "auto", "schedule": "cosine"}, "use schedule: plateau"),
    ({"epochs": "auto", "max_epochs": 0}, "greater than or equal to 1"),
])
def test_bad_epochs_values_are_refused_with_what_to_use(fields, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        TrainOptions(**fields)
