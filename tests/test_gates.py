"""Gates: warm or cold latency, and whether an accuracy drop is more than noise."""

from __future__ import annotations

import copy

import pytest

from compress import artifacts
from compress.config import parse_pipeline
from compress.errors import ConfigError
from compress.gates import evaluate_gates
from tests.conftest import TINY_PIPELINE


def _pipeline(gates: dict, cold_runs: int = 3):
    raw = copy.deepcopy(TINY_PIPELINE)
    raw["stages"].insert(2, {"id": "again", "stage": "export", "input": "teacher"})
    raw["stages"][-1].update(models=["teacher_onnx", "again"], cold_runs=cold_runs)
    raw["gates"] = gates
    return parse_pipeline(raw, "tiny.yaml")


METRICS = {
    "teacher_onnx.accuracy_pct": 90.0, "again.accuracy_pct": 89.0,
    "teacher_onnx.b1_t1.p50_ms": 1.0, "again.b1_t1.p50_ms": 0.25,
    "teacher_onnx.b1_t1.cold_p50_ms": 2.0, "again.b1_t1.cold_p50_ms": 1.0,
}


def _evaluate(cfg, tmp_path, tests: list | None = None):
    artifacts.write_json(tmp_path / "bench" / "bench.json", {"accuracy_tests": tests or []})
    manifest = {"stages": {"bench": {"metrics": METRICS}}}
    return {g["gate"]: g for g in evaluate_gates(cfg, manifest, tmp_path)}


def test_speedup_gates_read_warm_or_cold_latency(tmp_path):
    # setup
    cfg = _pipeline({"min_latency_speedup": 3, "cache": "cold", "speedups": [
        {"model": "again", "than": "teacher_onnx", "min": 3}]})
    # execute
    gates = _evaluate(cfg, tmp_path)
    # assert: 4x warm passes, 2x cold fails
    cold = gates["p50 speed-up again vs teacher_onnx (b1_t1, cold cache)"]
    warm = gates["p50 speed-up again vs teacher_onnx (b1_t1)"]
    assert cold["measured_value"] == 2.0 and not cold["passed"]
    assert warm["measured_value"] == 4.0 and warm["passed"]
    assert len(gates) == 2


def test_a_cold_gate_on_a_bench_without_cold_runs_is_refused_at_load():
    with pytest.raises(ConfigError, match="cold_runs: 0"):
        _pipeline({"min_latency_speedup": 2, "cache": "cold"}, cold_runs=0)
    with pytest.raises(ConfigError, match=r"speedups\[0\], field 'cache'"):
        _pipeline({"speedups": [{"model": "again", "than": "teacher_onnx", "cache": "cold"}]},
                  cold_runs=0)


def test_the_accuracy_drop_gate_says_whether_the_drop_is_significant(tmp_path):
    # setup: a 1-point drop that McNemar's test calls noise
    cfg = _pipeline({"max_test_accuracy_drop_pts": 0.5})
    tests = [{"a": "teacher_onnx", "b": "again", "only_a_correct": 4, "only_b_correct": 1,
              "p_value": 0.375, "significant": False, "drop_pts": 1.0}]
    # execute
    gate = _evaluate(cfg, tmp_path, tests)["accuracy drop teacher_onnx -> again"]
    # assert: the gate keeps its meaning (1 pt > 0.5 fails) and says it is not significant
    assert not gate["passed"] and gate["measured_value"] == 1.0
    assert gate["note"].startswith("not significant (McNemar exact p = 0.38; 4 test sample(s)")
