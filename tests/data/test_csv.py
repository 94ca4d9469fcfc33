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


def test_a_fixed_test_file_is_the_test_split(tmp_path):
    # setup: 30 training rows, 9 test rows of the same columns
    train = _csv(tmp_path, "a,b,kind,c\n" + ROWS)
    test_rows = "".join(f"{100 + i},{i},{(2, 10, 7)[i % 3]},{i % 4}\n" for i in range(9))
    test = _csv(tmp_path, "a,b,kind,c\n" + test_rows, "test.csv")
    # execute
    raw = load_csv_raw(CsvData(path=train, label="kind", test_path=test))
    # assert: every test row, as written; train and val come from the training file only
    assert raw.x_test[:, 0].tolist() == [100 + i for i in range(9)]
    assert [raw.class_labels[k] for k in raw.y_test] == [str((2, 10, 7)[i % 3]) for i in range(9)]
    assert len(raw.x_train) + len(raw.x_val) == 30 and raw.x_train.min() < 100


def test_a_test_file_with_an_unseen_class_is_refused(tmp_path):
    # setup
    train = _csv(tmp_path, "a,b,kind,c\n" + ROWS)
    test = _csv(tmp_path, "a,b,kind,c\n1,2,99,3\n", "test.csv")
    # execute / assert
    with pytest.raises(DataError, match=r"test.csv: class\(es\) \['99'\] .* not in the training"):
        load_csv_raw(CsvData(path=train, label="kind", test_path=test))


def test_every_bad_cell_is_named_in_one_message(tmp_path):
    # setup: 3 bad cells and a ragged row, then 30 more bad cells
    bad = "1,x,2,3\n4,,7,5\n1,2,3\n7,inf,10,1\n"
    few = _csv(tmp_path, "a,b,kind,c\n" + ROWS + bad)
    many = _csv(tmp_path, "a,b,kind,c\n" + ROWS + "1,x,2,3\n" * 30, "many.csv")
    # execute
    with pytest.raises(DataError) as few_err:
        load_csv_raw(CsvData(path=few, label="kind"))
    with pytest.raises(DataError) as many_err:
        load_csv_raw(CsvData(path=many, label="kind"))
    # assert
    msg = str(few_err.value)
    assert "t.csv: 4 bad cells or rows: line 32, column 'b': 'x' is not a number; line 33, " \
        "column 'b': empty cell; line 34: 3 cells but the header has 4 columns; line 35, " \
        "column 'b': 'inf' is not a finite number; feature columns must be numeric" in msg
    msg = str(many_err.value)
    assert "30 bad cells or rows" in msg and msg.count("is not a number") == 20
    assert "; and 10 more;" in msg


def test_the_test_file_is_found_from_the_pipeline_file(tmp_path):
    # setup
    from compress.config import parse_pipeline

    spec = {"name": "t", "data": {"source": "csv", "path": "a.csv", "test_path": "b.csv",
                                  "label": "y"},
            "stages": [{"id": "teacher", "stage": "train"}]}
    # execute
    cfg = parse_pipeline(spec, "t.yaml", tmp_path)
    # assert
    assert cfg.data.test_path == str((tmp_path / "b.csv").resolve())
    assert cfg.data.path == str((tmp_path / "a.csv").resolve())
