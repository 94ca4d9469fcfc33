"""Runner: content-hash caching, reruns of exactly what changed, manifest, integrity, gates."""

from __future__ import annotations

import json

import pytest

from compress.config import parse_pipeline
from compress.errors import ConfigError, GateError
from compress.runner import run_pipeline


def _run(raw, out, **kw):
    return run_pipeline(parse_pipeline(raw, "p.yaml"), out, progress=False, log=lambda m: None,
                        **kw)


def test_second_run_skips_everything_and_a_change_reruns_only_what_depends_on_it(
        tiny_pipeline, tmp_path):
    # setup
    first = _run(tiny_pipeline, tmp_path)
    onnx_sha = first.manifest["stages"]["teacher_onnx"]["outputs"]["teacher_onnx/model.onnx"]
    # execute: unchanged
    second = _run(tiny_pipeline, tmp_path)
    # assert
    assert first.ran == ["teacher", "teacher_onnx", "bench"]
    assert second.ran == [] and second.cached == ["teacher", "teacher_onnx", "bench"]
    assert second.manifest["stages"]["teacher_onnx"]["outputs"]["teacher_onnx/model.onnx"] == \
        onnx_sha

    # execute: a bench-only field changes -> only bench reruns
    tiny_pipeline["stages"][2]["min_runs"] = 6
    third = _run(tiny_pipeline, tmp_path)
    assert third.ran == ["bench"]

    # execute: a training field changes -> the teacher and everything downstream rerun
    tiny_pipeline["stages"][0]["epochs"] = 1
    fourth = _run(tiny_pipeline, tmp_path)
    assert fourth.ran == ["teacher", "teacher_onnx", "bench"]
    assert fourth.manifest["stages"]["teacher"]["metrics"]["epochs_run"] == 1


def test_manifest_records_hashes_metrics_and_times(tiny_run):
    # setup
    root, summary = tiny_run
    # execute
    manifest = json.loads((root / "manifest.json").read_text())
    # assert
    assert list(manifest["stages"]) == ["teacher", "teacher_onnx", "bench"]
    for entry in manifest["stages"].values():
        assert len(entry["cache_key"]) == 64 and len(entry["config_sha256"]) == 64
        assert entry["wall_time_s"] > 0 and entry["metrics"]
        for rel, meta in entry["outputs"].items():
            assert (root / rel).stat().st_size == meta["size_bytes"]
    teacher_sha = manifest["stages"]["teacher"]["outputs"]["teacher/model.pt"]["sha256"]
    assert manifest["stages"]["teacher_onnx"]["inputs"] == {"teacher": teacher_sha}
    assert {"torch", "onnxruntime"} <= set(manifest["versions"])
    assert (root / "report.md").read_text().startswith("# Report: pipeline `tiny`")


def test_tampered_artifact_is_rebuilt_not_trusted(tiny_pipeline, tmp_path):
    # setup
    _run(tiny_pipeline, tmp_path)
    onnx_path = tmp_path / "tiny" / "teacher_onnx" / "model.onnx"
    good = onnx_path.read_bytes()
    onnx_path.write_bytes(good[:-10] + b"0123456789")
    # execute
    again = _run(tiny_pipeline, tmp_path)
    # assert: export reran and, being deterministic, rebuilt the same bytes, so bench (whose
    # inputs are content hashes) stays cached
    assert again.ran == ["teacher_onnx"] and again.cached == ["teacher", "bench"]
    assert onnx_path.read_bytes() == good


def test_force_reruns_deterministically_and_leaves_no_staging_folders(tiny_pipeline, tmp_path):
    # execute
    first = _run(tiny_pipeline, tmp_path)
    again = _run(tiny_pipeline, tmp_path, force=True)
    # assert: same seed on CPU -> the same weights, ONNX bytes and accuracy
    assert again.ran == ["teacher", "teacher_onnx", "bench"]
    for sid, artifact in (("teacher", "model.pt"), ("teacher_onnx", "model.onnx")):
        a, b = first.manifest["stages"][sid], again.manifest["stages"][sid]
        assert a["outputs"][f"{sid}/{artifact}"] == b["outputs"][f"{sid}/{artifact}"]
        timing = ("wall", "cpu_time")
        assert {k: v for k, v in a["metrics"].items() if not any(t in k for t in timing)} == \
            {k: v for k, v in b["metrics"].items() if not any(t in k for t in timing)}
    leftovers = [p.name for p in (tmp_path / "tiny").iterdir() if p.name.startswith(".")]
    assert leftovers == [".lock"]


def test_failing_stage_keeps_earlier_artifacts_and_writes_nothing_half(tiny_pipeline, tmp_path,
                                                                       monkeypatch):
    # setup: a good run, then an export that fails half-way
    _run(tiny_pipeline, tmp_path)
    before = (tmp_path / "tiny" / "teacher_onnx" / "model.onnx").read_bytes()
    import compress.stages.export as export_mod

    def broken(model, example, path, opset, external_data=False):
        path.write_bytes(b"half-written")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(export_mod, "export_onnx", broken)
    tiny_pipeline["stages"][1]["atol"] = 2e-4  # forces the export stage to rerun
    # execute
    with pytest.raises(RuntimeError):
        _run(tiny_pipeline, tmp_path)
    # assert: the previous export is untouched and no staging folder is left
    assert (tmp_path / "tiny" / "teacher_onnx" / "model.onnx").read_bytes() == before
    assert not list((tmp_path / "tiny").glob(".staging-*"))
    manifest = json.loads((tmp_path / "tiny" / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["teacher", "teacher_onnx", "bench"]  # nothing forgotten
    # and once the exporter works again, the run resumes: the teacher comes from the cache; the
    # bench reruns, since the new ONNX records the export's new cache key in its metadata
    monkeypatch.undo()
    resumed = _run(tiny_pipeline, tmp_path)
    assert resumed.ran == ["teacher_onnx", "bench"] and resumed.cached == ["teacher"]


def test_failing_gate_raises_with_every_result(tiny_pipeline, tmp_path):
    # setup
    tiny_pipeline["gates"] = {"min_accuracy_pct": 99.99,
                              "metrics": [{"metric": "teacher.epochs_run", "min": 1}]}
    # execute
    with pytest.raises(GateError) as exc:
        _run(tiny_pipeline, tmp_path)
    # assert
    results = {r["gate"]: r for r in exc.value.results}
    assert not results["teacher_onnx accuracy"]["passed"]
    assert results["teacher.epochs_run"]["passed"]
    manifest = json.loads((tmp_path / "tiny" / "manifest.json").read_text())
    assert len(manifest["gates"]) == 2


def test_gate_on_a_metric_that_does_not_exist(tiny_pipeline, tmp_path):
    tiny_pipeline["gates"] = {"metrics": [{"metric": "teacher.accuracy", "max": 1}]}
    with pytest.raises(ConfigError, match="stage 'teacher' has no metric 'accuracy'"):
        _run(tiny_pipeline, tmp_path)


def test_ratio_gates_compare_two_models(tiny_pipeline, tmp_path):
    # setup: the same ONNX exported twice; ratios must be ~1
    tiny_pipeline["stages"].insert(2, {"id": "again", "stage": "export", "input": "teacher",
                                       "parity_samples": 64})
    tiny_pipeline["stages"][3]["models"] = ["teacher_onnx", "again"]
    tiny_pipeline["gates"] = {"max_test_accuracy_drop_pts": 0.0, "min_size_reduction": 0.99,
                              "min_latency_speedup": 1000}
    # execute
    with pytest.raises(GateError) as exc:
        _run(tiny_pipeline, tmp_path)
    # assert
    passed = {r["gate"].split(" ")[0]: r["passed"] for r in exc.value.results}
    assert passed == {"accuracy": True, "size": True, "p50": False}


def test_user_data_file_is_part_of_the_cache_key(tiny_pipeline, tmp_path):
    # setup: an npz made from digits; the pipeline refers to it by path
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images[:, None].astype(np.float32), d.target
    path = tmp_path / "my.npz"
    np.savez(path, x_train=x[:1200], y_train=y[:1200], x_test=x[1200:], y_test=y[1200:])
    tiny_pipeline["data"] = {"source": "npz", "path": str(path)}
    first = _run(tiny_pipeline, tmp_path / "out")
    # execute: same path, other bytes
    np.savez(path, x_train=x[:1100], y_train=y[:1100], x_test=x[1100:], y_test=y[1100:])
    second = _run(tiny_pipeline, tmp_path / "out")
    # assert
    assert first.ran == second.ran == ["teacher", "teacher_onnx", "bench"]
    assert second.manifest["stages"]["teacher"]["metrics"]["test_samples"] == 697


def test_every_stage_records_its_energy_and_the_energy_settings_rerun_only_the_bench(
        tiny_pipeline, tmp_path):
    # setup
    first = _run(tiny_pipeline, tmp_path)
    # execute: another power model
    tiny_pipeline["energy"] = {"watts_per_core": 10.0}
    second = _run(tiny_pipeline, tmp_path)
    # assert
    for entry in first.manifest["stages"].values():
        e = entry["energy"]
        assert e["joules"] >= 0 and e["method"] == "estimate" and e["why"]
    assert second.ran == ["bench"]
    bench = second.manifest["stages"]["bench"]
    assert bench["energy"]["power_model"]["watts_per_core"] == 10.0
    assert second.manifest["energy"]["watts_per_core"] == 10.0
