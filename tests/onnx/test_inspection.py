"""`compress inspect`: any ONNX file (ours or not) and ORT-format files, text and JSON."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compress.onnx.inspection import inspect_file, weight_summary
from tests.conftest import run_cli


def test_int8_student_reads_as_mostly_int8(compress_run):
    # execute
    info = inspect_file(compress_run[0] / "student_int8" / "model.onnx")
    # assert
    assert info["int8_weight_fraction"] > 0.9
    assert info["opsets"] == {"ai.onnx": 18} and info["ir_version"] == 10
    assert info["inputs"] == [{"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float"}]
    assert info["outputs"][0]["name"] == "logits"
    assert info["ops"]["QuantizeLinear"] >= 1 and info["ops"]["Conv"] >= 1
    assert info["metadata"]["compress.source"]["stage"] == "student_int8"
    assert info["min_onnxruntime"]["version"] == "1.18.0"
    assert info["size_bytes"] == (compress_run[0] / "student_int8" / "model.onnx").stat().st_size


def test_fp32_model_has_no_int8_weights_and_counts_its_parameters(compress_run):
    # setup
    root, summary = compress_run
    # execute
    info = inspect_file(root / "student_fp32" / "model.onnx")
    # assert
    assert info["int8_weight_fraction"] == 0.0
    assert info["params"] == summary.manifest["stages"]["bench"]["metrics"][
        "student_fp32.params"]


def test_ort_format_file_is_read_too(compress_run):
    # execute
    info = inspect_file(compress_run[0] / "student_int8_ort" / "model.ort")
    # assert
    assert info["format"].startswith("ort")
    assert info["int8_weight_fraction"] > 0.9
    assert info["inputs"][0]["name"] == "input"
    assert any(op.startswith("com.microsoft.") or op == "QuantizeLinear" for op in info["ops"])
    assert "compress.preprocessing" in info["metadata"]


def test_a_foreign_onnx_file_without_our_metadata(tmp_path):
    # setup: a one-node model as any other tool would write it
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))
    # execute
    info = inspect_file(path)
    proc = run_cli("inspect", str(path))
    # assert
    assert info["metadata"] == {} and info["params"] == 6 and info["ops"] == {"MatMul": 1}
    assert info["min_onnxruntime"]["version"] == "1.10.0"
    assert proc.returncode == 0 and "metadata       (none)" in proc.stdout


def test_weight_counting_rule():
    # int8 weights, a per-channel float scale (counted), a scalar scale and an int32 bias (not)
    summary = weight_summary([(3, 90), (1, 10), (1, 1), (6, 10)])
    assert summary["int8_weight_fraction"] == 0.9
    assert summary["params"] == 101
    assert summary["initializer_elements"] == {"float": 11, "int32": 10, "int8": 90}


def test_cli_json_and_text(compress_run):
    # setup
    path = compress_run[0] / "student_int8" / "model.onnx"
    # execute
    as_json = run_cli("inspect", str(path), "--json")
    as_text = run_cli("inspect", str(path))
    # assert
    assert as_json.returncode == 0 and as_text.returncode == 0
    info = json.loads(as_json.stdout)
    assert info["int8_weight_fraction"] > 0.9 and "weights_counted" in info
    assert "int8 weights" in as_text.stdout and "onnxruntime    >= 1.18.0" in as_text.stdout
