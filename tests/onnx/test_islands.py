"""Float islands and layout transposes, read from the graph ORT runs."""

from __future__ import annotations

from compress.onnx.islands import describe, float_ops_text
from compress.onnx.quantization import CalibrationConfig, Quantizer, Setting
from compress.onnx.rewrite import pools_to_global_average
from tests.onnx.graphs import calibration_batch, small_cnn


def _int8(src, tmp_path, name, setting=Setting("static", "uint8", "qoperator")):
    q = Quantizer(src, tmp_path, CalibrationConfig(), calibration_batch(), "input")
    return q.quantize(setting, tmp_path / f"{name}.onnx")


def test_a_float_reducemean_between_int8_ops_is_reported_as_an_island(tmp_path):
    # setup: ORT has no int8 ReduceMean: it runs DequantizeLinear -> ReduceMean -> Quantize
    path = _int8(small_cnn(tmp_path / "f.onnx"), tmp_path, "q")
    # execute
    floats, transposes = describe(path)
    # assert
    # (the Flatten after it moves float data too: part of the same island)
    assert [(f["name"], f["op"], f["island"]) for f in floats] == [
        ("mean", "ReduceMean", True), ("flatten", "Flatten", True)]
    assert "ReduceMean x1" in float_ops_text(floats)
    assert all("NHWC" in t["why"] for t in transposes)


def test_pools_rewritten_to_global_average_leave_no_island(tmp_path):
    # setup
    src = small_cnn(tmp_path / "f.onnx")
    # execute
    rewritten = pools_to_global_average(src, tmp_path / "g.onnx")
    floats, _ = describe(_int8(tmp_path / "g.onnx", tmp_path, "q"))
    # assert: the whole graph in int8, from the first QuantizeLinear to the last
    assert rewritten == ["mean"]
    assert floats == [] and float_ops_text(floats) == "none"


def test_a_node_left_float_on_purpose_says_why(tmp_path):
    # setup: the first conv kept fp32 (placement), at the graph's input
    src = pools_to_global_average(small_cnn(tmp_path / "f.onnx"), tmp_path / "g.onnx") and \
        tmp_path / "g.onnx"
    path = _int8(src, tmp_path, "q", Setting("static", "uint8", "qdq", keep_float=("conv1",)))
    # execute
    floats, _ = describe(path, {"conv1": "kept fp32 by placement"})
    # assert: ORT renamed the node (NCHWc), its output name still finds the reason
    assert [(f["op"], f["island"], f["why"]) for f in floats] == [
        ("Conv", False, "kept fp32 by placement")]
    assert floats[0]["model_node"] == "conv1"
    assert float_ops_text(floats) == "Conv x1 (kept fp32 by placement: conv1)"
