"""Gates that name a runtime (`runtime: openvino`) read the bench's runtime table; a runtime the
bench does not measure, or an unknown name, is refused when the pipeline loads."""

from __future__ import annotations

import copy

import pytest

from compress import artifacts
from compress.config import parse_pipeline
from compress.errors import ConfigError
from compress.gates import evaluate_gates
from tests.conftest import TINY_PIPELINE


def _pipeline(gates: dict, runtimes=("onnxruntime", "openvino")):
    raw = copy.deepcopy(TINY_PIPELINE)
    raw["stages"].insert(2, {"id": "again", "stage": "export", "input": "teacher"})
    raw["stages"][-1].update(models=["teacher_onnx", "again"], runtimes=list(runtimes))
    raw["gates"] = gates
    return parse_pipeline(raw, "tiny.yaml")


def test_speedup_and_metric_gates_read_the_runtime_named(tmp_path):
    # setup
    cfg = _pipeline({"speedups": [{"model": "again", "than": "teacher_onnx", "min": 1.5,
                                   "runtime": "openvino"}],
                     "metrics": [{"metric": "bench.again.agree", "min": 300,
                                  "runtime": "openvino"}]})
    metrics = {"teacher_onnx.openvino.b1_t1.p50_ms": 1.0, "again.openvino.b1_t1.p50_ms": 0.8,
               "teacher_onnx.b1_t1.p50_ms": 1.0, "again.b1_t1.p50_ms": 0.1,
               "again.openvino.agree": 360}
    artifacts.write_json(tmp_path / "bench" / "bench.json", {"accuracy_tests": []})
    # execute
    gates = {g["gate"]: g for g in evaluate_gates(
        cfg, {"stages": {"bench": {"metrics": metrics}}}, tmp_path)}
    # assert: 1.25x in OpenVINO (not ORT's 10x) fails the 1.5x gate
    speed = gates["p50 speed-up again vs teacher_onnx (openvino.b1_t1, openvino)"]
    assert speed["measured_value"] == pytest.approx(1.25) and not speed["passed"]
    assert gates["bench.again.openvino.agree"]["passed"]


def test_a_gate_on_a_runtime_the_bench_does_not_measure_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"speedups\[0\], field 'runtime': bench 'bench' does "
                                          r"not measure onnxruntime-web; add it"):
        _pipeline({"speedups": [{"model": "again", "than": "teacher_onnx",
                                 "runtime": "onnxruntime-web"}]})


def test_an_unknown_runtime_name_is_refused_at_load_naming_the_field():
    with pytest.raises(ConfigError, match=r"(?s)stage 'bench'.*runtimes.*'onnxruntime-web'"):
        _pipeline({}, runtimes=("onnxruntime", "tensorrt"))


def test_a_metric_gate_in_another_runtime_must_exist_in_the_bench():
    with pytest.raises(ConfigError, match="has no metric 'again.openvino.agreement'"):
        _pipeline({"metrics": [{"metric": "bench.again.agreement", "min": 1,
                                "runtime": "openvino"}]})
