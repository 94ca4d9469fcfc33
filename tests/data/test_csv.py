"""The csv source: columns, label order, the npz contract's arrays. (Bad tables: one row each
in tests/test_bad_inputs.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import CsvData, load_dataset
from compress.data.csv import class_order, load_csv_raw
from compress.errors import DataError


def _csv(tmp_path, text: str, name: str = "t.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


ROWS = "".join(f"{i},{i * 0.5},{(2, 10, 7)[i % 3]},{i % 4}\n" for i in range(30))


def test_features_default_to_every_other_column_and_labels_sort_numerically(tmp_path):
    # setup
    path = _csv(tmp_path, "a,b,kind,c\n" + ROWS)
    # execute
    raw = load_csv_raw(CsvData(path=path, label="kind"))
    data = load_dataset(CsvData(path=path, label="kind"))
    # assert: '2' < '7' < '10' as numbers, not as text
    assert raw.class_labels == ["2", "7", "10"]
    assert raw.source_steps["csv"]["features"] == ["a", "b", "c"]
    assert int(np.prod(data.input_shape)) == 3 and data.num_classes == 3
    assert len(raw.y_train) + len(raw.y_val) + len(raw.y_test) == 30
    assert data.preprocessing()["csv"]["label_column"] == "kind"


def test_listed_features_are_taken_in_the_listed_order(tmp_path):
    # setup
    path = _csv(tmp_path, "a;b;kind;c\n" + ROWS.replace(",", ";"))
    # execute
    raw = load_csv_raw(CsvData(path=path, label="kind", features=("c", "a"), delimiter=";"))
    # assert: column c first (values 0..3), then a (0..29)
    x = np.concatenate([raw.x_train, raw.x_val, raw.x_test]).reshape(30, 2)
    assert x[:, 0].max() == 3 and x[:, 1].max() == 29
    assert raw.source_steps["csv"]["features"] == ["c", "a"]


def test_text_labels_sort_as_text():
    assert class_order(["pear", "apple", "fig", "apple"]) == ["apple", "fig", "pear"]


def test_the_label_column_cannot_also_be_a_feature(tmp_path):
    path = _csv(tmp_path, "a,b,kind,c\n" + ROWS)
    with pytest.raises(DataError, match="lists the label column 'kind'"):
        load_csv_raw(CsvData(path=path, label="kind", features=("a", "kind")))
