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


def test_bench_records_cold_latency_beside_the_warm(tiny_run):
    # setup
    from compress.measure.system import cache_sizes

    root, summary = tiny_run
    # execute
    bench = json.loads((root / "bench" / "bench.json").read_text())
    flat = summary.manifest["stages"]["bench"]["metrics"]
    # assert
    caches = cache_sizes()
    assert bench["cold_cache"]["runs"] == 3
    assert bench["cold_cache"]["evict_bytes"] >= caches["l2_bytes"] + caches["l3_bytes"]
    for setting in ("b1_t1", "b8_t1"):
        cold = bench["models"]["teacher_onnx"]["latency"][setting]["cold"]
        assert cold["runs"] == 3 and 0 < cold["p50_ms"] <= cold["p99_ms"]
        assert flat[f"teacher_onnx.{setting}.cold_p50_ms"] == cold["p50_ms"]
    assert "evicting" in bench["method"]["cold_latency"]


def test_bench_keeps_predictions_and_accuracy_intervals(tiny_run):
    # setup
    import numpy as np

    root, summary = tiny_run
    # execute
    bench = json.loads((root / "bench" / "bench.json").read_text())
    with np.load(root / "bench" / "predictions.npz") as f:
        y, pred = f["y_test"], f["pred.teacher_onnx"]
    # assert: the recorded accuracy is that of the kept predictions, inside its interval
    m = bench["models"]["teacher_onnx"]
    assert len(y) == bench["test_samples"] and m["correct"] == int((pred == y).sum())
    assert m["accuracy_pct"] == m["correct"] / len(y) * 100
    low, high = m["accuracy_ci_pct"]
    assert low < m["accuracy_pct"] < high
    assert summary.manifest["stages"]["bench"]["metrics"]["teacher_onnx.accuracy_ci_low_pct"] == low
    assert bench["accuracy_tests"] == []  # one model: nothing to pair


def test_paired_test_between_two_models_on_the_same_samples(compress_run):
    # setup
    import numpy as np

    root, summary = compress_run
    # execute
    bench = json.loads((root / "bench" / "bench.json").read_text())
    with np.load(root / "bench" / "predictions.npz") as f:
        y, fp32, int8 = f["y_test"], f["pred.student_fp32"], f["pred.student_int8"]
    # assert: b and c count the samples only one of the two gets right
    (t,) = bench["accuracy_tests"]
    assert (t["a"], t["b"]) == ("student_fp32", "student_int8")
    assert t["only_a_correct"] == int(((fp32 == y) & (int8 != y)).sum())
    assert t["only_b_correct"] == int(((fp32 != y) & (int8 == y)).sum())
    models = bench["models"]
    drop = models["student_fp32"]["accuracy_pct"] - models["student_int8"]["accuracy_pct"]
    assert abs(t["drop_pts"] - drop) < 1e-9 and 0 < t["p_value"] <= 1
    flat = summary.manifest["stages"]["bench"]["metrics"]
    assert flat["student_int8.accuracy_drop_p_value"] == t["p_value"]
    assert "McNemar vs `student_fp32`" in (root / "bench" / "bench.md").read_text()
