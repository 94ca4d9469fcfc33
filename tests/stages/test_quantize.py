"""Stage `quantize`: int8 within tolerance of fp32, settings chosen by measurement, and the
accuracy-aware loop that stops within its budget and keeps the best model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from compress import artifacts
from compress.config import parse_pipeline
from compress.measure.candidates import int8_warning
from compress.measure.ort import make_session, predict, read_metadata
from compress.onnx.inspection import int8_weight_fraction
from compress.runner import run_single
from compress.stages import Artifact
from compress.stages import quantize as qstage
from compress.stages.quantize import QuantizeConfig


def _digits():
    from compress.data import load_dataset

    cfg = parse_pipeline({"name": "x", "data": {"source": "digits"},
                          "stages": [{"id": "t", "stage": "train"}]}, "x").data
    return cfg, load_dataset(cfg)


def test_int8_student_stays_within_tolerance_of_fp32(compress_run):
    # setup
    root, summary = compress_run
    _, data = _digits()
    fp32 = make_session(root / "student_fp32" / "model.onnx", 1)
    int8_path = root / "student_int8" / "model.onnx"
    int8 = make_session(int8_path, 1)
    # execute
    a, b = predict(fp32, data.x_test), predict(int8, data.x_test)
    m = summary.manifest["stages"]["student_int8"]["metrics"]
    # assert: same predictions almost everywhere, logits close, weights really int8
    agree = float((a.argmax(1) == b.argmax(1)).mean())
    assert agree >= 0.95
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98
    assert abs(m["accuracy_drop_pts"]) <= 3.0
    assert int8_weight_fraction(int8_path) > 0.9 and m["int8_weight_fraction"] > 0.9
    assert int8.get_inputs()[0].name == "input" and int8.get_outputs()[0].name == "logits"


def test_settings_are_chosen_by_measured_latency(compress_run):
    # setup
    root, summary = compress_run
    # execute
    report = artifacts.read_json(root / "student_int8" / "quantize.json")
    meta = read_metadata(root / "student_int8" / "model.onnx")
    # assert: every activation type / weight range measured against fp32 at both batch sizes;
    # the chosen one is the most accurate among those within 3 % of the fastest
    # (and each with the first conv, one input channel, kept fp32: kept only where faster)
    names = {c["setting"] for c in report["candidates"]}
    base = {"qdq-u8s8", "qdq-u8s8-w7", "qdq-s8s8"}
    assert names == base | {f"{n}+fp32-narrow" for n in base}
    for c in report["candidates"]:
        assert set(c["latency"]) == {"b1", "b64"} and c["latency"]["b1"]["speedup"] > 0
    eligible = [c for c in report["candidates"] if c.get("placement", {}).get("kept", True)]
    fastest = max(c["speedup_score"] for c in eligible)
    near = [c for c in eligible if c["speedup_score"] >= 0.97 * fastest]
    best = max(near, key=lambda c: (c["val_accuracy_pct"], c["speedup_score"]))
    assert report["chosen"]["setting"] == best["setting"] == meta["compress.quantization"][
        "setting"]
    assert "fastest" in report["why"]
    assert meta["compress.source"]["from_stage"] == "student_fp32"
    # faster_than_fp32 is what the recorded latencies say: int8's p50 below fp32's at every
    # batch size measured for the chosen setting
    lat = report["chosen"]["latency"]
    assert summary.manifest["stages"]["student_int8"]["metrics"]["faster_than_fp32"] == all(
        v["p50_ms"] < v["fp32_p50_ms"] for v in lat.values())
    for v in lat.values():
        assert v["speedup"] == pytest.approx(v["fp32_p50_ms"] / v["p50_ms"], abs=1e-4)


def _slower_everywhere(self, paths, sizes, time_s):
    """Every int8 candidate at half fp32's speed, at every batch size."""
    return {n: {f"b{b}": {"p50_ms": 2.0, "fp32_p50_ms": 1.0, "speedup": 0.5} for b in sizes}
            for n in paths}


@pytest.mark.parametrize("when_slower", ["keep", "fail"])
def test_int8_slower_than_fp32_is_kept_or_fails_as_asked(tiny_onnx, tmp_path, monkeypatch,
                                                          when_slower):
    # setup
    from compress.errors import StageError

    monkeypatch.setattr(qstage.Evaluator, "speedups", _slower_everywhere)
    data_cfg, _ = _digits()
    cfg = QuantizeConfig(id="q", input="m", activation_type="uint8", reduce_range="false",
                         select_batch_sizes=[1, 8], calibration={"samples": 64},
                         when_slower=when_slower)
    arts = {"m": Artifact("m", "onnx", tiny_onnx, "x")}
    # execute / assert
    if when_slower == "fail":
        with pytest.raises(StageError, match=r"slower than fp32 at every batch size.*"
                                             r"b1: 0.50x, b8: 0.50x.*when_slower: keep"):
            run_single(cfg, data_cfg, arts, tmp_path / "q")
        assert not (tmp_path / "q" / "model.onnx").exists()
    else:
        metrics = run_single(cfg, data_cfg, arts, tmp_path / "q").metrics
        assert metrics["faster_than_fp32"] is False
        assert "not faster than fp32 at every batch size" in metrics["warning"]
        assert (tmp_path / "q" / "model.onnx").is_file()
        assert (tmp_path / "q" / "model.json").is_file()


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_every_calibration_method_quantizes(compress_run, tmp_path, method):
    # setup
    root, _ = compress_run
    data_cfg, _ = _digits()
    src = root / "student_fp32" / "model.onnx"
    cfg = QuantizeConfig(id="q", input="m", activation_type="uint8", select_time_s=0.02,
                         select_batch_sizes=[1], calibration={"method": method, "samples": 64})
    # execute
    metrics = run_single(cfg, data_cfg, {"m": Artifact("m", "onnx", src, "x")},
                         tmp_path / "q").metrics
    # assert
    assert metrics["calibration_method"] == method and metrics["test_accuracy_pct"] > 20
    assert not (tmp_path / "q" / "work").exists()  # scratch files are not left behind


def test_dynamic_quantization_of_an_mlp(tiny_onnx, tmp_path):
    # setup
    data_cfg, _ = _digits()
    cfg = QuantizeConfig(id="q", input="m", mode="dynamic", select_time_s=0.02)
    # execute
    metrics = run_single(cfg, data_cfg, {"m": Artifact("m", "onnx", tiny_onnx, "x")},
                         tmp_path / "q").metrics
    # assert
    assert metrics["setting"].startswith("dynamic") and metrics["calibration_method"] is None
    assert metrics["int8_weight_fraction"] > 0.9
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops


def test_unknown_calibration_method_lists_the_choices(write_yaml, tiny_pipeline):
    # setup
    from compress.config import load_pipeline
    from compress.errors import ConfigError

    tiny_pipeline["stages"].insert(2, {"id": "q", "stage": "quantize", "input": "teacher_onnx",
                                       "calibration": {"method": "kl"}})
    # execute / assert
    with pytest.raises(ConfigError, match=r"stage 'q'.*calibration.*minmax.*entropy.*percentile"):
        load_pipeline(write_yaml(tiny_pipeline))


class _FakeQuantizer:
    float_path = Path("float.onnx")

    def quantize(self, setting, out, exclude=()):
        return Path(f"{len(exclude)}.onnx")


class _FakeEvaluator:
    input = "input"

    def __init__(self, drops):
        self.drops = drops  # val drop after excluding i nodes

    def evaluate(self, path):
        d = self.drops[int(path.stem)]
        return {"val_accuracy_pct": 90 - d, "test_accuracy_pct": 90 - d, "val_drop_pts": d,
                "test_drop_pts": d}

    def speedups(self, paths, sizes, time_s):
        return {n: {"b1": {"p50_ms": 1.0, "fp32_p50_ms": 2.0, "speedup": 2.0}} for n in paths}


def _search(monkeypatch, drops, budget, max_nodes):
    ranking = [{"node": f"n{i}", "op": "Conv", "sqnr_db": float(i)} for i in range(10)]
    monkeypatch.setattr(qstage, "node_sensitivity", lambda *a: ranking)
    cfg = QuantizeConfig(id="q", input="m", max_val_accuracy_drop_pts=budget,
                         max_excluded_nodes=max_nodes)
    ev = _FakeEvaluator(drops)
    start = {"setting": "qdq-u8s8", "excluded_nodes": [], **ev.evaluate(Path("0.onnx"))}
    trials: list[dict] = []
    setting = qstage.candidate_settings(cfg)[0]
    best = qstage._accuracy_aware(cfg, _FakeQuantizer(), ev, setting, Path("."), None, start,
                                  trials, [1])
    return best, trials


def test_accuracy_aware_search_stops_once_within_budget(monkeypatch):
    # execute: excluding 1, 2, 3 nodes gives drops 1.5, 0.8, 0.3 (budget 0.5)
    best, trials = _search(monkeypatch, [2.0, 1.5, 0.8, 0.3, 0.1], budget=0.5, max_nodes=8)
    # assert: three trials, most sensitive nodes first, stopped as soon as the budget held
    assert len(trials) == 3
    assert best["excluded_nodes"] == ["n0", "n1", "n2"] and best["val_drop_pts"] == 0.3
    assert [t["excluded_nodes"][-1] for t in trials] == ["n0", "n1", "n2"]


def test_accuracy_aware_search_keeps_the_best_when_the_node_budget_runs_out(monkeypatch):
    # execute: excluding a second node makes it worse; the budget is never met
    best, trials = _search(monkeypatch, [2.0, 1.0, 1.4, 1.2], budget=0.5, max_nodes=3)
    # assert
    assert len(trials) == 3
    assert best["excluded_nodes"] == ["n0"] and best["val_drop_pts"] == 1.0
    assert all("latency" in t for t in trials)


def test_qat_exports_an_int8_model_that_ort_runs(compress_run, tmp_path):
    # setup
    from compress.stages.qat import QatConfig

    root, _ = compress_run
    data_cfg, _ = _digits()
    arts = {n: Artifact(n, "checkpoint", root / n / "model.pt", "x")
            for n in ("pruned", "teacher")}
    cfg = QatConfig(id="q", input="pruned", teacher="teacher", device="cpu", epochs=1,
                    batch_size=128, calibration={"samples": 64})
    # execute
    metrics = run_single(cfg, data_cfg, arts, tmp_path / "qat").metrics
    # assert
    path = tmp_path / "qat" / "model.onnx"
    assert metrics["int8_weight_fraction"] > 0.9
    assert metrics["test_accuracy_pct"] > 20
    meta = read_metadata(path)
    assert meta["compress.quantization"]["mode"] == "qat"
    assert meta["compress.metrics"]["test_accuracy_pct"] == metrics["test_accuracy_pct"]
    assert meta["compress.min_onnxruntime"]["version"]
    session = make_session(path, 1)
    assert session.get_inputs()[0].name == "input"
    assert session.get_outputs()[0].name == "logits"


def test_an_int8_file_larger_than_fp32_is_warned_about(capsys):
    # setup: wine's student as measured in issue 28 (7,219 bytes int8, 5,476 fp32), and faster
    cfg = QuantizeConfig(id="q", input="m")
    chosen = {"setting": "qdq_u8s8", "latency": {"b1": {"speedup": 1.3}}}
    # execute
    larger = int8_warning(cfg, "q", chosen, True, 7219, 5476)
    both = int8_warning(cfg, "q", {**chosen, "latency": {"b1": {"speedup": 0.7}}},
                               False, 7219, 5476)
    fine = int8_warning(cfg, "q", chosen, True, 2000, 5476)
    # assert
    assert "is larger than fp32 (7,219 vs 5,476 bytes" in larger and "faster" not in larger
    assert "not faster than fp32 at every batch size on this CPU (b1: 0.70x) and larger" in both
    assert fine is None
    assert capsys.readouterr().err.count("warning: q: the int8 model (qdq_u8s8)") == 2


class _FakeTimer:
    """Accuracy fixed, speed-ups over fp32 injected per setting name (no real timing)."""

    input = "input"

    def __init__(self, speedups: dict[str, dict[str, float]]):
        self.table = speedups

    def evaluate(self, path):
        return {"val_accuracy_pct": 95.0, "test_accuracy_pct": 95.0, "val_drop_pts": 0.0,
                "test_drop_pts": 0.0}

    def speedups(self, paths, sizes, time_s):
        return {n: {f"b{b}": {"p50_ms": 1 / self.table[n][f"b{b}"], "fp32_p50_ms": 1.0,
                              "speedup": self.table[n][f"b{b}"]} for b in sizes}
                for n in paths}


def _placement(tmp_path, variant_speedups: dict[str, float]):
    from compress.onnx.placement import narrow_convs
    from compress.onnx.quantization import CalibrationConfig, Quantizer
    from tests.onnx.graphs import calibration_batch, small_cnn

    src = small_cnn(tmp_path / "f.onnx")
    cfg = QuantizeConfig(id="q", input="m", activation_type="uint8", reduce_range="false",
                         format="qoperator")
    narrow = narrow_convs(src, cfg.narrow_conv_channels)
    settings = qstage.candidate_settings(cfg, {"Conv": 2}, narrow)
    quantizer = Quantizer(src, tmp_path, CalibrationConfig(), calibration_batch(), "input")
    ev = _FakeTimer({"qoperator-u8s8": {"b1": 1.2, "b64": 2.0},
                     "qoperator-u8s8+fp32-narrow": variant_speedups})
    candidates = qstage._measure_candidates(cfg, quantizer, ev, settings, tmp_path, [1, 64])
    chosen, _ = qstage._choose(cfg, candidates, settings, quantizer, ev, None, tmp_path,
                               [1, 64], [])
    return narrow, candidates, chosen


def test_the_first_conv_in_fp32_is_kept_when_faster_at_every_batch_size(tmp_path):
    # execute: keeping conv1 (one input channel) fp32 is faster at batch 1 and batch 64
    narrow, candidates, chosen = _placement(tmp_path, {"b1": 1.5, "b64": 2.2})
    # assert: the variant was built (conv1 float, conv2 int8), timed beside the all-int8 one
    # and chosen
    from compress.onnx.quantization import int8_ops

    assert narrow == ["conv1"]
    assert [c["setting"] for c in candidates] == ["qoperator-u8s8", "qoperator-u8s8+fp32-narrow"]
    assert int8_ops(candidates[1]["path"]) == {"int8": {"QLinearConv": 1, "QGemm": 1},
                                               "float": {"Conv": 1}}
    assert chosen["setting"] == "qoperator-u8s8+fp32-narrow" and chosen["keep_float"] == ["conv1"]
    assert candidates[1]["placement"]["kept"]


def test_the_first_conv_in_fp32_is_dropped_when_slower_at_one_batch_size(tmp_path):
    # execute: faster at batch 1, slower at 64
    _, candidates, chosen = _placement(tmp_path, {"b1": 1.5, "b64": 1.9})
    # assert
    assert chosen["setting"] == "qoperator-u8s8" and chosen["keep_float"] == []
    assert not candidates[1]["placement"]["kept"]
    assert "b64" in candidates[1]["placement"]["why"]
