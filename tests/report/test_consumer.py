"""What a consumer gets from a run on a table: per-feature preprocessing in the metadata and in
model.json, no absolute build path, a README that names failed gates and gives paths that work,
test_data.npz as (N, F); and the model shipped is the fastest on the Pareto front that meets
the gates."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml

from compress import artifacts
from compress.config import load_pipeline, parse_pipeline
from compress.errors import GateError
from compress.measure.ort import read_metadata
from compress.report.consumer import ship_choice
from compress.runner import run_pipeline
from tests.conftest import REPO

TABLE = {
    "name": "table",
    "data": {"source": "npz", "path": "table.npz"},
    "stages": [
        {"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [16]},
         "epochs": 3, "batch_size": 32, "lr": 0.02, "device": "cpu"},
        {"id": "teacher_onnx", "stage": "export", "input": "teacher"},
        {"id": "bench", "stage": "bench", "models": ["teacher_onnx"], "batch_sizes": [1],
         "warmup_runs": 2, "min_runs": 5, "min_time_s": 0.0, "energy_time_s": 0.0,
         "memory": False},
    ],
    # a gate no model can meet, so that the README must say so
    "gates": {"max_latency_p50_ms": 1e-9},
}


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A table whose 4 features differ in scale by 1,000x, run through a pipeline file."""
    tmp = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    scale = np.array([0.01, 1.0, 10.0, 1000.0], np.float32)

    def split(n):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        return x * scale, (x[:, 0] + x[:, 3] > 0).astype(np.int64)

    (xt, yt), (xs, ys) = split(200), split(60)
    np.savez(tmp / "table.npz", x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(TABLE))
    cfg = load_pipeline(tmp / "pipeline.yaml")
    with pytest.raises(GateError):
        run_pipeline(cfg, tmp / "out", progress=False, log=lambda m: None,
                     source=str(tmp / "pipeline.yaml"))
    return tmp, tmp / "out" / "table"


def test_table_metadata_says_per_feature_without_the_build_path(table_run):
    # setup
    tmp, root = table_run
    # execute
    meta = read_metadata(root / "teacher_onnx" / "model.onnx")
    manifest = artifacts.read_json(root / "manifest.json")
    # assert: one mean/std per feature; the data file by name and sha256, never its full path
    pre = meta["compress.preprocessing"]
    assert pre["layout"] == "NF" and len(pre["mean"]) == 4 and "per feature" in pre["formula"]
    assert meta["compress.input"]["shape"] == ["batch", 4]
    sha = artifacts.sha256_file(tmp / "table.npz")
    assert meta["compress.data"]["path"] == "table.npz" and meta["compress.data"]["sha256"] == sha
    assert manifest["data"]["path"] == "table.npz" and manifest["data"]["sha256"] == sha
    data_path = str(tmp / "table.npz")
    assert data_path not in (root / "manifest.json").read_text()
    assert not any(str(tmp) in json.dumps(v) for v in meta.values())


def test_model_json_beside_each_onnx_model_repeats_its_metadata(table_run):
    # setup
    _, root = table_run
    model = root / "teacher_onnx" / "model.onnx"
    # execute
    contract = artifacts.read_json(root / "teacher_onnx" / "model.json")
    meta = read_metadata(model)
    manifest = artifacts.read_json(root / "manifest.json")
    # assert
    assert contract["preprocessing"] == meta["compress.preprocessing"]
    assert contract["input"] == meta["compress.input"]
    assert contract["class_labels"] == meta["compress.class_labels"] == ["0", "1"]
    assert contract["metrics"]["test_accuracy_pct"] == meta["compress.metrics"][
        "test_accuracy_pct"]
    assert contract["model_sha256"] == artifacts.sha256_file(model)
    entry = next(a for a in manifest["artifacts"] if a["stage"] == "teacher_onnx")
    assert entry["contract"] == "teacher_onnx/model.json"
    assert entry["contract_sha256"] == artifacts.sha256_file(root / "teacher_onnx" / "model.json")


def test_readme_names_failed_gates_and_gives_paths_that_work(table_run, capsys):
    # setup
    _, root = table_run
    sys.path.insert(0, str(REPO / "examples"))
    import classify

    # execute
    readme = (root / "README.md").read_text()
    test_data = np.load(root / "test_data.npz")
    run_line = next(line for line in readme.splitlines()
                    if line.startswith("python examples/classify.py"))
    # assert
    assert "**The gates failed** (1 of 1)" in readme and "teacher_onnx p50 latency" in readme
    model = run_line.split()[-1]
    assert model == (root / "teacher_onnx" / "model.onnx").as_posix()
    assert test_data["x"].shape == (60, 4)  # raw, as a table
    assert classify.main([model]) == 0  # per-feature preprocessing, stored accuracy matched
    assert "match" in capsys.readouterr().out


def _bench_manifest(tmp_path, latency_ms: dict, accuracy: dict):
    """A manifest and bench.json as a run leaves them, with the given p50s and accuracies."""
    models = {m: {"accuracy_pct": accuracy[m], "size_bytes": 1000, "params": 10,
                  "latency": {"b1_t1": {"p50_ms": latency_ms[m], "p90_ms": 1, "p99_ms": 1}}}
              for m in latency_ms}
    artifacts.write_json(tmp_path / "bench" / "bench.json",
                         {"models": models, "baseline": "teacher_onnx"})
    metrics = {f"{m}.{k}": v for m, v in models.items()
               for k, v in (("accuracy_pct", v["accuracy_pct"]), ("size_bytes", 1000),
                            ("b1_t1.p50_ms", v["latency"]["b1_t1"]["p50_ms"]))}
    stages = {m: {"stage": "export", "primary": f"{m}/model.onnx", "metrics": {}}
              for m in models}
    stages["bench"] = {"stage": "bench", "primary": "bench/bench.json", "metrics": metrics}
    return {"stages": stages}


def _cfg(gates):
    return parse_pipeline({
        "name": "x", "data": {"source": "digits"},
        "stages": [{"id": "teacher", "stage": "train"},
                   {"id": "teacher_onnx", "stage": "export", "input": "teacher"},
                   {"id": "student_fp32", "stage": "export", "input": "teacher"},
                   {"id": "student_int8", "stage": "quantize", "input": "student_fp32"},
                   {"id": "bench", "stage": "bench",
                    "models": ["teacher_onnx", "student_fp32", "student_int8"]}],
        "gates": gates}, "x")


@pytest.mark.parametrize("gates", [{"max_test_accuracy_drop_pts": 3, "min_latency_speedup": 2},
                                   None])
def test_a_slower_int8_model_is_not_shipped(tmp_path, gates):
    # setup: int8 slower than its fp32 export, equally accurate (dominated)
    manifest = _bench_manifest(tmp_path, {"teacher_onnx": 1.0, "student_fp32": 0.1,
                                          "student_int8": 0.12},
                               {"teacher_onnx": 98.0, "student_fp32": 97.0, "student_int8": 97.0})
    # execute
    ship, why = ship_choice(_cfg(gates), manifest, tmp_path)
    # assert
    assert ship == "student_fp32"
    assert "Pareto front" in why and "dominated by student_fp32" in why


def test_gates_decide_which_front_model_ships(tmp_path):
    # setup: the fastest model loses 5 points; the gate allows 3
    manifest = _bench_manifest(tmp_path, {"teacher_onnx": 1.0, "student_fp32": 0.3,
                                          "student_int8": 0.1},
                               {"teacher_onnx": 98.0, "student_fp32": 97.0, "student_int8": 93.0})
    cfg = _cfg({"max_test_accuracy_drop_pts": 3})
    # execute
    ship, why = ship_choice(cfg, manifest, tmp_path)
    # assert: int8 is on the front but fails the drop gate; the fp32 student meets it
    assert ship == "student_fp32" and "meets every gate" in why


def test_the_ship_reason_says_the_int8_model_is_also_larger(tmp_path):
    # setup: int8 dominated by its fp32 export and a larger file (a small table's MLP)
    manifest = _bench_manifest(tmp_path, {"teacher_onnx": 1.0, "student_fp32": 0.1,
                                          "student_int8": 0.12},
                               {"teacher_onnx": 98.0, "student_fp32": 97.0, "student_int8": 97.0})
    bench = artifacts.read_json(tmp_path / "bench" / "bench.json")
    bench["models"]["student_int8"]["size_bytes"] = 7219
    bench["models"]["student_fp32"]["size_bytes"] = 5476
    artifacts.write_json(tmp_path / "bench" / "bench.json", bench)
    # execute
    ship, why = ship_choice(_cfg(None), manifest, tmp_path)
    # assert
    assert ship == "student_fp32"
    assert "not `student_int8`: dominated by student_fp32" in why
    assert "and larger (7,219 vs 5,476 bytes)" in why
