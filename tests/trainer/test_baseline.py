"""The plain baselines: logistic regression for tables, a small CNN for images and sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.data import DigitsData, from_arrays, load_dataset
from compress.models import build_model
from compress.trainer.baseline import baseline_accuracy, small_cnn
from compress.trainer.training import TrainOptions, fit, fit_metrics


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DigitsData())


def test_an_underfit_image_model_is_warned_about_against_the_small_cnn(digits, capsys):
    # setup: a deliberately tiny model (a 2-unit bottleneck) trained for one epoch
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden": [2]}, digits.input_shape, digits.num_classes)
    opts = TrainOptions(epochs=1, lr=0.001, device="cpu", patience=None)
    res = fit(model, digits, opts, progress=False)
    # execute
    m = fit_metrics(model, digits, res, who="teacher", o=opts, progress=False)
    # assert: the CNN learned digits; the tiny model is far below it, and the run says so
    assert m["baseline_method"].startswith("small 2-D CNN")
    assert m["baseline_test_accuracy_pct"] > 90 and m["baseline_val_accuracy_pct"] > 90
    assert m["vs_baseline_pts"] < -30
    assert "below the plain baseline (small 2-D CNN" in m["baseline_warning"]
    assert f"warning: teacher: {m['baseline_warning']}" in capsys.readouterr().err


def test_baseline_false_skips_it(digits):
    # setup
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden": [8]}, digits.input_shape, digits.num_classes)
    opts = TrainOptions(epochs=1, device="cpu", baseline=False)
    res = fit(model, digits, opts, progress=False)
    # execute
    m = fit_metrics(model, digits, res, who="teacher", o=opts)
    # assert
    assert m["baseline_test_accuracy_pct"] is None and m["baseline_warning"] is None


def test_a_sequence_gets_a_1d_cnn_baseline_that_learns():
    # setup: 3 classes of sequences, told apart by which third of the signal carries a bump
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = rng.normal(0, 0.3, (300, 1, 24)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, label * 8:(label + 1) * 8] += 1.5
    data = from_arrays(x[:240], y[:240], x[240:], y[240:])
    # execute
    acc, val, method = baseline_accuracy(data, fit)
    # assert
    assert method.startswith("small 1-D CNN") and acc > 90 and val > 90


@pytest.mark.parametrize("shape", [[3, 48, 48], [1, 8, 8], [2, 40], [5, 1]])
def test_the_small_cnn_fits_any_image_or_sequence_size(shape):
    # setup
    net = small_cnn(shape, 4).eval()
    # execute
    out = net(torch.zeros(2, *shape))
    # assert: ~25 k parameters at most; a length-1 "sequence" (a table as NCL) is not pooled
    assert out.shape == (2, 4)
    assert sum(p.numel() for p in net.parameters()) < 26_000
