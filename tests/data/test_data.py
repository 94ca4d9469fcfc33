"""Data sources: fixed seeded splits, train-only normalisation, and npz checks."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import DigitsData, Mnist1dData, NpzData, load_dataset, normalise_with
from compress.errors import DataError


def test_digits_splits_are_disjoint_stratified_and_fixed():
    # execute
    a = load_dataset(DigitsData(seed=0))
    b = load_dataset(DigitsData(seed=0, val_fraction=0.1000001))  # bypasses the cache
    # assert
    assert a.input_shape == [1, 8, 8] and a.num_classes == 10
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert len(a.x_test) == 360
    np.testing.assert_array_equal(a.y_test, b.y_test)  # same seed -> same test split
    flat = lambda x: {r.tobytes() for r in x}  # noqa: E731
    assert not flat(a.x_test) & flat(a.x_train)
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}  # stratified: ~36 per class


def test_other_seed_gives_another_split():
    a, b = load_dataset(DigitsData(seed=0)), load_dataset(DigitsData(seed=1))
    assert not np.array_equal(a.y_test, b.y_test)


def test_normalisation_statistics_come_from_train_only():
    # execute
    d = load_dataset(DigitsData())
    # assert: train is standardised exactly, test only approximately
    assert abs(float(d.x_train.mean())) < 1e-5
    assert abs(float(d.x_train.std()) - 1) < 1e-4
    assert float(d.x_test.mean()) != pytest.approx(0.0, abs=1e-5)
    assert d.preprocessing()["layout"] == "NCHW" and len(d.mean) == 1


def test_mnist1d_is_generated_offline_with_the_requested_size():
    # execute
    d = load_dataset(Mnist1dData(num_samples=600, seed=3))
    # assert
    assert d.input_shape == [1, 40] and d.layout == "NCL"
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 600
    assert len(d.x_test) == 120
    assert set(np.unique(d.y_train)) == set(range(10))


def _npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return NpzData(path=str(path))


def _good(n=60, f=5):
    rng = np.random.default_rng(0)
    return {"x_train": rng.normal(size=(n, f)).astype(np.float32), "y_train": np.arange(n) % 3,
            "x_test": rng.normal(size=(20, f)).astype(np.float32), "y_test": np.arange(20) % 3}


def test_npz_loads_features_as_a_table(tmp_path):
    # execute
    d = load_dataset(_npz(tmp_path, **_good(), class_labels=np.array(["a", "b", "c"])))
    # assert: (N, F) stays a table, one mean and std per feature
    assert d.input_shape == [5] and d.num_classes == 3
    assert d.layout == "NF" and len(d.mean) == len(d.std) == 5
    assert d.class_labels == ["a", "b", "c"]
    assert len(d.x_val) == 6  # carved from train with val_fraction 0.1


def test_npz_uses_given_val_split(tmp_path):
    arrays = {**_good(), "x_val": np.zeros((7, 5), np.float32), "y_val": np.arange(7) % 3}
    d = load_dataset(_npz(tmp_path, **arrays))
    assert len(d.x_val) == 7 and len(d.x_train) == 60


def _with(**changes):
    arrays = _good()
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return arrays


NPZ_BAD = [
    ("missing_array", _with(y_test=None), "missing array(s) y_test"),
    ("val_without_labels", _with(x_val=np.zeros((3, 5), np.float32)), "missing array(s) y_val"),
    ("length_mismatch", _with(y_train=np.arange(59) % 3), "60 inputs but 59 labels"),
    ("nan", _with(x_test=np.full((20, 5), np.nan, np.float32)), "NaN/Inf"),
    ("float_labels", _with(y_train=np.linspace(0, 1, 60)), "labels must be integers"),
    ("string_inputs", _with(x_train=np.array([["a"] * 5] * 60)), "inputs must be numeric"),
    ("negative_label", _with(y_test=np.arange(20) % 3 - 1), "negative label"),
    ("unseen_label", _with(y_test=np.arange(20) % 4), "y_train only goes up to 2"),
    ("empty_split", _with(x_test=np.zeros((0, 5), np.float32), y_test=np.zeros(0, np.int64)),
     "split is empty"),
    ("shape_mismatch", _with(x_test=np.zeros((20, 6), np.float32)),
     "x_test has 6 features, x_train 5"),
    ("sequence_shape_mismatch", _with(x_train=np.zeros((60, 1, 5), np.float32),
                                      x_test=np.zeros((20, 1, 6), np.float32)),
     "x_test has samples of shape (1, 6), x_train (1, 5)"),
    ("bad_rank", _with(x_train=np.zeros(60, np.float32)), "expected (N, F)"),
]


@pytest.mark.parametrize("name,arrays,needle", NPZ_BAD, ids=[b[0] for b in NPZ_BAD])
def test_npz_problems_are_named(tmp_path, name, arrays, needle):
    # setup
    cfg = _npz(tmp_path, **arrays)
    # execute / assert
    with pytest.raises(DataError) as exc:
        load_dataset(cfg)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_npz_missing_or_corrupt_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(NpzData(path=str(tmp_path / "none.npz")))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(NpzData(path=str(bad)))


def test_npz_pickled_arrays_are_refused(tmp_path):
    arrays = _good()
    arrays["x_train"] = np.array([object()] * 60, dtype=object)
    path = tmp_path / "p.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError):
        load_dataset(NpzData(path=str(path)))


def test_normalise_with_applies_stored_statistics():
    x = np.full((2, 1, 3), 5.0, np.float32)
    np.testing.assert_allclose(normalise_with(x, [1.0], [2.0]), 2.0)
    with pytest.raises(DataError, match="channels"):
        normalise_with(x, [1.0, 2.0], [1.0, 1.0])
