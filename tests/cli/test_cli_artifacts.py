"""`compress export --format ort`: from a checkpoint (export, then convert) and from an ONNX
model (convert only), through the installed entry point."""

from __future__ import annotations

import numpy as np

from compress.data import DigitsData, load_dataset
from compress.measure.ort import make_session, predict
from tests.conftest import run_cli


def test_export_format_ort_from_a_checkpoint(tiny_checkpoint, tmp_path):
    # execute
    proc = run_cli("export", str(tiny_checkpoint), "--format", "ort", "--out",
                   str(tmp_path / "e"))
    # assert
    assert proc.returncode == 0, proc.stderr
    files = {p.name for p in (tmp_path / "e").iterdir()}
    assert {"model.onnx", "model.ort", "model.required_operators.config"} <= files
    assert "identical predictions: True" in proc.stdout
    x = load_dataset(DigitsData()).x_test
    a = predict(make_session(tmp_path / "e" / "model.onnx", 1), x)
    b = predict(make_session(tmp_path / "e" / "model.ort", 1), x)
    assert (a.argmax(1) == b.argmax(1)).all()


def test_export_format_ort_converts_a_given_onnx_model(compress_run, tmp_path):
    # setup
    int8 = compress_run[0] / "student_int8" / "model.onnx"
    # execute
    proc = run_cli("export", str(int8), "--format", "ort", "--out", str(tmp_path / "edge"))
    # assert
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == [
        "model.ort", "model.required_operators.config"]
    x = load_dataset(DigitsData()).x_test
    np.testing.assert_array_equal(
        predict(make_session(int8, 1), x).argmax(1),
        predict(make_session(tmp_path / "edge" / "model.ort", 1), x).argmax(1))
