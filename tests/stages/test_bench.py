"""Stage `bench`: every model measured in ORT with accuracy, size, params and percentiles."""

from __future__ import annotations

import json

from compress.measure.latency import summarize
from compress.stages.bench import flatten_bench


def test_bench_json_has_every_number_and_how_it_was_measured(tiny_run):
    # setup
    root, summary = tiny_run
    # execute
    bench = json.loads((root / "bench" / "bench.json").read_text())
    # assert
    m = bench["models"]["teacher_onnx"]
    assert m["accuracy_pct"] == summary.manifest["stages"]["teacher_onnx"]["metrics"][
        "ort_test_accuracy_pct"]
    assert m["size_bytes"] == (root / "teacher_onnx" / "model.onnx").stat().st_size
    assert m["params"] == 64 * 32 + 32 + 32 * 10 + 10
    assert set(m["latency"]) == {"b1_t1", "b8_t1"}
    lat = m["latency"]["b1_t1"]
    assert lat["runs"] >= 5 and lat["threads"] == 1 and lat["batch_size"] == 1
    assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    assert "interleaved" in bench["method"]["latency"]
    assert bench["cpu"]["logical_cores"] >= 1 and "onnxruntime" in bench["versions"]
    assert "| `teacher_onnx` |" in (root / "bench" / "bench.md").read_text()


def test_flattened_metrics_are_gate_addressable(tiny_run):
    root, _ = tiny_run
    flat = flatten_bench(json.loads((root / "bench" / "bench.json").read_text()))
    assert "teacher_onnx.b1_t1.p50_ms" in flat and "teacher_onnx.accuracy_pct" in flat


def test_percentiles():
    st = summarize([i * 1_000_000 for i in range(1, 101)])  # 1..100 ms
    assert st.runs == 100 and st.min_ms == 1.0
    assert 50 <= st.p50_ms <= 51 and 90 <= st.p90_ms <= 91 and 99 <= st.p99_ms <= 100


def test_bench_records_energy_and_ci(tiny_run):
    # setup
    root, summary = tiny_run
    # execute
    bench = json.loads((root / "bench" / "bench.json").read_text())
    flat = summary.manifest["stages"]["bench"]["metrics"]
    # assert
    m = bench["models"]["teacher_onnx"]
    lat = m["latency"]["b1_t1"]
    assert lat["p50_ci_low_ms"] <= lat["p50_ms"] <= lat["p50_ci_high_ms"]
    assert m["memory"] is None  # memory: false in the tiny pipeline (tested with peers)
    energy = m["energy"]["b1_t1"]
    assert energy["method"] == "estimate" and "W/core" in energy["label"]
    assert energy["mj_per_inference"] > 0 and energy["co2e_g_per_million"] > 0
    assert set(m["energy"]) == {"b1_t1", "b8_t1"}  # every batch size, first thread count
    assert "estimate" in bench["method"]["energy"]
    assert flat["teacher_onnx.energy_mj_per_inference"] == energy["mj_per_inference"]
    assert "teacher_onnx.b1_t1.p50_ci_high_ms" in flat
