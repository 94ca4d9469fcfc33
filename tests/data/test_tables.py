"""Tables, (N, F): layout NF, one mean and std per feature from the training split, and a
teacher that reaches a standardised LogisticRegression on a table whose features differ in scale
by 1,000x (scikit-learn's wine: ~0.1 to ~1,700)."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import NpzData, SklearnData, load_dataset
from compress.errors import ConfigError
from compress.models import MlpSpec, ResNetSpec, build_model
from compress.trainer.baseline import baseline_accuracy
from compress.trainer.training import TrainOptions, fit, fit_metrics, seed_everything

WINE = SklearnData(name="wine", seed=0, test_fraction=0.3)  # 54 test samples: 1.85 pts each
FAST = TrainOptions(epochs=15, batch_size=32, lr=0.02, patience=None, device="cpu")


def _train(data) -> dict:
    seed_everything(0)
    model = build_model(MlpSpec(hidden=[32]), data.input_shape, data.num_classes)
    result = fit(model, data, FAST, progress=False)
    return fit_metrics(model, data, result, who="test")


def _wine_npz(tmp_path, channel_axis: bool):
    """The wine split written as an .npz, as (N, F) or as (N, F, 1)."""
    d = SklearnData(name="wine", seed=0, test_fraction=0.3)
    from compress.data.tables import load_sklearn_raw

    raw = load_sklearn_raw(d)
    shape = (lambda x: x[:, :, None]) if channel_axis else (lambda x: x)
    path = tmp_path / f"wine{'_nf1' if channel_axis else ''}.npz"
    np.savez(path, x_train=shape(raw.x_train), y_train=raw.y_train, x_val=shape(raw.x_val),
             y_val=raw.y_val, x_test=shape(raw.x_test), y_test=raw.y_test)
    return load_dataset(NpzData(path=str(path)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tables")
    nf, nf1 = _wine_npz(tmp, False), _wine_npz(tmp, True)
    return {"nf": (nf, _train(nf)), "nf1": (nf1, _train(nf1))}


def test_a_table_gets_one_mean_and_std_per_feature():
    # execute
    d = load_dataset(WINE)
    # assert: the raw features span 1,000x; after normalisation each is standardised on train
    assert d.layout == "NF" and d.input_shape == [13] and len(d.mean) == len(d.std) == 13
    assert max(d.std) / min(d.std) > 1000
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(d.x_train.std(axis=0), 1, atol=1e-3)
    assert d.class_labels == ["class_0", "class_1", "class_2"]


def test_teacher_on_a_1000x_scaled_table_is_within_2_points_of_logistic_regression(trained):
    # setup
    data, metrics = trained["nf"]
    logreg = baseline_accuracy(data, fit)[0]
    # assert
    assert metrics["baseline_test_accuracy_pct"] == logreg >= 90
    assert metrics["test_accuracy_pct"] >= logreg - 2
    assert metrics["vs_baseline_pts"] == pytest.approx(metrics["test_accuracy_pct"] - logreg)


def test_a_table_as_n_f_trains_as_well_as_as_n_f_1(trained):
    # setup
    (nf, m_nf), (nf1, m_nf1) = trained["nf"], trained["nf1"]
    # assert: (N, F, 1) makes each feature a channel: the same statistics, the same accuracy
    assert nf.layout == "NF" and nf1.layout == "NCL"
    np.testing.assert_allclose(nf.mean, nf1.mean, rtol=1e-6)
    assert abs(m_nf["test_accuracy_pct"] - m_nf1["test_accuracy_pct"]) <= 100 / len(nf.y_test)
    # a sequence's plain baseline is the small 1-D CNN, not the logistic regression
    assert m_nf1["baseline_method"].startswith("small 1-D CNN")


def test_shift_augmentation_of_a_table_is_refused():
    # setup
    data = load_dataset(WINE)
    model = build_model(MlpSpec(hidden=[8]), data.input_shape, data.num_classes)
    opts = FAST.model_copy(update={"augment_shift": 1})
    # execute / assert
    with pytest.raises(ConfigError, match=r"augment_shift.*table \(layout NF\).*augment_shift: 0"):
        fit(model, data, opts, progress=False, desc="teacher")


def test_a_convolutional_model_on_a_table_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"resnet.*\[13\].*use mlp for tables"):
        build_model(ResNetSpec(width=8), [13], 3)


def test_a_model_below_the_baseline_is_warned_about(capsys):
    # setup
    from compress.trainer.baseline import baseline_metrics

    data = load_dataset(WINE)
    # execute
    m = baseline_metrics(data, 50.0, "student", fit)
    # assert
    assert m["vs_baseline_pts"] < 0 and "below the plain baseline" in m["baseline_warning"]
    assert "warning: student: test accuracy 50.00 %" in capsys.readouterr().err
