"""compress/measure/runtimes: every model in every runtime, loads or why not, agreement with
onnxruntime, p50 per batch size; a missing runtime is a line, not a crash."""

from __future__ import annotations

import shutil

import pytest

from compress.errors import ConfigError
from compress.measure.ort import make_session, predict
from compress.measure.runtimes import get_runtime
from compress.measure.runtimes.base import first_unsupported_op
from compress.measure.runtimes.compare import compare_runtimes
from compress.measure.runtimes.names import flatten_runtimes, runtime_metric_names

TIMING = {"warmup_runs": 1, "min_runs": 3, "min_time_s": 0.0, "max_time_s": 5.0}
needs_openvino = pytest.mark.skipif(get_runtime("openvino").missing() is not None,
                                    reason="openvino is not installed (compress[openvino])")


def _ort_preds(paths, x):
    return {m: predict(make_session(p, 1), x).argmax(1) for m, p in paths.items()}


@needs_openvino
def test_openvino_beside_onnxruntime_with_the_qoperator_build_reported_not_raised(
        int8_models, digits):
    # setup
    paths = {"fp32": int8_models["fp32"], "qop": int8_models["qoperator"]}
    x, y = digits.x_test[:40], digits.y_test[:40]
    # execute
    table = compare_runtimes(paths, x, y, _ort_preds(paths, x), ["onnxruntime", "openvino"],
                             [1, 4], 1, TIMING)
    # assert
    fp32 = table["models"]["fp32"]
    assert fp32["onnxruntime"]["agree"] == 40 and fp32["openvino"]["agree"] == 40
    assert set(fp32["openvino"]["latency"]) == {"b1_t1", "b4_t1"}
    assert fp32["openvino"]["latency"]["b1_t1"]["p50_ms"] > 0
    qop = table["models"]["qop"]["openvino"]
    assert qop["loaded"] is False and qop["unsupported_op"] == "com.microsoft.QGemm"
    flat = flatten_runtimes(table)
    assert flat["qop.openvino.loads"] == 0 and flat["fp32.openvino.agree"] == 40
    assert set(flat) <= set(runtime_metric_names(["fp32", "qop"], ["onnxruntime", "openvino"],
                                                 [1, 4], 1))


def test_a_runtime_not_installed_is_one_line_with_how_to_install(int8_models, digits,
                                                                 monkeypatch, capsys):
    # setup: no node on PATH
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("COMPRESS_CACHE_DIR", "/nonexistent-compress-cache")
    paths = {"fp32": int8_models["fp32"]}
    x, y = digits.x_test[:10], digits.y_test[:10]
    # execute
    table = compare_runtimes(paths, x, y, _ort_preds(paths, x), ["onnxruntime-web"], [1], 1,
                             TIMING)
    # assert
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnxruntime-web skipped: node is not on PATH" in err[0]
    assert "make ortweb" in err[0]
    assert table["runtimes"]["onnxruntime-web"]["status"] == "not installed"
    assert table["models"]["fp32"] == {}


def test_an_unknown_runtime_name_says_which_exist():
    with pytest.raises(ConfigError, match="unknown runtime 'tflite'; use one of onnxruntime"):
        get_runtime("tflite")


def test_the_first_unsupported_op_is_read_from_each_runtimes_words():
    assert first_unsupported_op(
        "Check failed\nNo conversion rule found for operations: com.microsoft.QGemm, x") == \
        "com.microsoft.QGemm"
    assert first_unsupported_op("failed:\n-- QLinearConv-18 with a message:\nWhile") == \
        "QLinearConv"
    assert first_unsupported_op("Could not find an implementation for QLinearAdd(1) node") == \
        "QLinearAdd"
    assert first_unsupported_op("protobuf parsing failed") is None


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_onnxruntime_web_in_node_agrees_and_times_inside_js(int8_models, digits):
    # setup
    paths = {"fp32": int8_models["fp32"], "qdq": int8_models["qdq"]}
    x, y = digits.x_test[:30], digits.y_test[:30]
    # execute: the first call installs the pinned package into the cache folder (npm ci)
    table = compare_runtimes(paths, x, y, _ort_preds(paths, x), ["onnxruntime-web"], [1, 8], 1,
                             TIMING)
    # assert
    assert table["runtimes"]["onnxruntime-web"]["version"] == "1.30.0"
    for m in paths:
        rec = table["models"][m]["onnxruntime-web"]
        assert rec["loaded"] and rec["agree"] == 30 and rec["samples"] == 30
        assert set(rec["latency"]) == {"b1_t1", "b8_t1"}
        assert rec["latency"]["b1_t1"]["runs"] >= 3
