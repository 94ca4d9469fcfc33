"""`compress validate`: the pipeline's fields and its data, checked without running anything;
YAML indentation mistakes explained in plain words."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from compress.cli.main import cli

NPZ_PIPELINE = """name: table
data: {source: npz, path: table.npz}
stages:
  - {id: teacher, stage: train, model: {arch: mlp, hidden: [16]}, epochs: 1}
"""


def _validate(path):
    return CliRunner().invoke(cli, ["validate", str(path)])


def _table(path, train_features: int, test_features: int) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.normal(size=(40, train_features)),
             y_train=np.arange(40) % 2, x_test=rng.normal(size=(10, test_features)),
             y_test=np.arange(10) % 2)


def test_a_data_file_that_does_not_exist_is_refused(tmp_path):
    # setup
    (tmp_path / "p.yaml").write_text(NPZ_PIPELINE)
    # execute
    res = _validate(tmp_path / "p.yaml")
    # assert
    assert res.exit_code == 2
    assert "table.npz: data file not found" in res.output and "ok" not in res.output


def test_x_arrays_of_different_shapes_are_named(tmp_path):
    # setup
    (tmp_path / "p.yaml").write_text(NPZ_PIPELINE)
    _table(tmp_path / "table.npz", train_features=13, test_features=12)
    # execute
    res = _validate(tmp_path / "p.yaml")
    # assert
    assert res.exit_code == 2
    assert "x_test has 12 features, x_train 13; expected 13 features per row in x_test (as in " \
        "x_train), got 12" in res.output and "needs the samples" not in res.output


def test_good_data_is_described(tmp_path):
    # setup
    (tmp_path / "p.yaml").write_text(NPZ_PIPELINE)
    _table(tmp_path / "table.npz", train_features=13, test_features=13)
    # execute
    res = _validate(tmp_path / "p.yaml")
    # assert
    assert res.exit_code == 0, res.output
    assert "ok: pipeline 'table'" in res.output and "10 test samples" in res.output
    assert "pipeline 'table', 1 stage: teacher (train)" in res.output  # not "1 stages"
    assert "2 classes" in res.output


BAD_INDENT = {
    "key less indented than its siblings": (
        "name: x\nstages:\n  - id: a\n    stage: train\n   epochs: 3\n", 5, "`stage: train`"),
    "key more indented than its siblings": (
        "name: x\ndata:\n  source: npz\n    path: a.npz\nstages: []\n", 4, "`source: npz`"),
    "list item's key under the dash": (
        "name: x\nstages:\n  - id: a\n  - id: b\n   stage: export\n", 5, "`- id: b`"),
}


@pytest.mark.parametrize(("text", "line", "above"), BAD_INDENT.values(), ids=list(BAD_INDENT))
def test_a_mis_indented_key_gets_a_plain_words_hint(tmp_path, text, line, above):
    # setup
    (tmp_path / "p.yaml").write_text(text)
    # execute
    res = _validate(tmp_path / "p.yaml")
    # assert
    assert res.exit_code == 2
    out = res.output.strip()
    assert len(out.splitlines()) == 1 and f"malformed YAML at line {line}" in out
    assert f"line {line} is `{text.splitlines()[line - 1].strip()}`" in out
    assert "check the indentation of this key against the one above" in out and above in out


def test_a_tab_is_named_and_a_colon_in_a_value_is_not_called_indentation(tmp_path):
    (tmp_path / "tab.yaml").write_text("name: x\nstages:\n\t- id: a\n")
    (tmp_path / "colon.yaml").write_text("name: a: b\nstages: []\n")
    assert "indented with a tab" in _validate(tmp_path / "tab.yaml").output
    colon = _validate(tmp_path / "colon.yaml").output
    assert "put it in quotes" in colon and "indentation" not in colon
