"""Stage `convert`: ORT format that predicts exactly as the ONNX model, with the operator list
a reduced onnxruntime build needs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from compress.data import DigitsData, load_dataset
from compress.measure.ort import make_session, predict


def test_ort_file_loads_in_ort_and_predicts_as_the_onnx(compress_run):
    # setup
    root, summary = compress_run
    x = load_dataset(DigitsData()).x_test
    onnx_path = root / "student_int8" / "model.onnx"
    ort_path = root / "student_int8_ort" / "model.ort"
    # execute
    session = ort.InferenceSession(str(ort_path), providers=["CPUExecutionProvider"])
    from_ort = predict(session, x)
    from_onnx = predict(make_session(onnx_path, 1), x)
    # assert
    assert ort_path.read_bytes()[4:8] == b"ORTM"  # the flatbuffer identifier of ORT format
    assert (from_ort.argmax(1) == from_onnx.argmax(1)).all()
    np.testing.assert_allclose(from_ort, from_onnx, atol=1e-4)
    metrics = summary.manifest["stages"]["student_int8_ort"]["metrics"]
    assert metrics["identical_predictions"] is True
    assert metrics["test_accuracy_pct"] == metrics["onnx_test_accuracy_pct"]


def test_required_operators_config_lists_the_models_ops(compress_run):
    # setup
    root, _ = compress_run
    # execute
    text = (root / "student_int8_ort" / "model.required_operators.config").read_text()
    # assert
    rows = [line.split(";") for line in text.splitlines() if line and not line[0] == "#"]
    ops = {op for _, _, names in rows for op in names.split(",")}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert all(domain in ("ai.onnx", "com.microsoft") for domain, _, _ in rows)
    assert "model.ort" in text and ".convert-" not in text  # names the shipped file


def test_ort_file_keeps_the_contract_metadata(compress_run):
    # setup
    root, summary = compress_run
    # execute
    session = ort.InferenceSession(str(root / "student_int8_ort" / "model.ort"),
                                   providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    # assert
    import json

    source = json.loads(meta["compress.source"])
    assert source["stage"] == "student_int8_ort" and source["from_stage"] == "student_int8"
    assert source["cache_key"] == summary.manifest["stages"]["student_int8_ort"]["cache_key"]
    assert json.loads(meta["compress.min_onnxruntime"])["version"] == ort.__version__
    assert json.loads(meta["compress.preprocessing"])["layout"] == "NCHW"
