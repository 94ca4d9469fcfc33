"""compress/report/ship_runtimes.py: the file to ship per runtime by the Pareto rule, from a
bench's runtime table (hand-written here: no model runs)."""

from __future__ import annotations

from compress import artifacts
from compress.report.ship_runtimes import runtime_ships, ship_table, write_model_json


def _rec(acc: float, p50: float, agree: int = 100) -> dict:
    return {"loaded": True, "accuracy_pct": acc, "agree": agree, "samples": 100,
            "latency": {"b1_t1": {"batch_size": 1, "threads": 1, "p50_ms": p50}}}


FAIL = {"loaded": False, "error": "RuntimeError: no rule", "unsupported_op": "com.microsoft.QGemm"}
TABLE = {"threads": 1, "runtimes": {
    "onnxruntime": {"status": "measured", "version": "1.32.0"},
    "openvino": {"status": "measured", "version": "2026.4.1"},
    "onnxruntime-web": {"status": "not installed", "why": "node is not on PATH",
                        "install": "make ortweb"}},
    "models": {
        "fp32": {"onnxruntime": _rec(99.0, 0.05), "openvino": _rec(99.0, 0.07)},
        "int8": {"onnxruntime": _rec(99.0, 0.04), "openvino": FAIL},
        "qdq": {"onnxruntime": _rec(99.0, 0.045), "openvino": _rec(99.0, 0.06)},
        "slow_bad": {"onnxruntime": _rec(90.0, 0.5), "openvino": _rec(90.0, 0.01, 90)}}}


def _folder(tmp_path):
    artifacts.write_json(tmp_path / "bench" / "bench.json", {"runtimes": TABLE})
    artifacts.write_json(tmp_path / "int8" / "model.json", {
        "input": {"name": "input", "shape": ["batch", 1, 8, 8]},
        "preprocessing": {"mean": [4.9], "std": [6.0]}, "class_labels": list(range(10))})
    manifest = {"pipeline": "p", "stages": {"bench": {"stage": "bench"}}}
    index = [{"stage": m, "path": f"{m}/model.onnx", "format": "onnx", "ship": m == "int8",
              "sha256": "ab", "test_accuracy_pct": 99.0,
              "contract": "int8/model.json" if m == "int8" else None} for m in TABLE["models"]]
    return manifest, index


def test_each_runtime_gets_the_fastest_file_on_its_front_as_accurate_as_the_ort_ship(tmp_path):
    # setup
    manifest, index = _folder(tmp_path)
    # execute
    ships = runtime_ships(tmp_path, manifest, index)
    rows = {r["runtime"]: r for r in ships["rows"]}
    # assert: ORT keeps the run's choice; OpenVINO cannot load int8 and gets the QDQ build (the
    # faster, less accurate slow_bad does not qualify)
    assert rows["onnxruntime"]["stage"] == "int8"
    assert rows["openvino"]["stage"] == "qdq" and rows["openvino"]["p50_ms"] == 0.06
    assert "`int8` (com.microsoft.QGemm)" in rows["openvino"]["why"]
    assert rows["onnxruntime-web"]["stage"] is None and "make ortweb" in rows["onnxruntime-web"][
        "why"]
    text = "\n".join(ship_table(ships))
    assert "| openvino 2026.4.1 | `qdq/model.onnx` | 0.06 ms at batch 1 | 99.00 % | 100/100 |" \
        in text


def test_model_json_holds_the_contract_and_the_table(tmp_path):
    # setup
    manifest, index = _folder(tmp_path)
    ships = runtime_ships(tmp_path, manifest, index)
    # execute
    written = write_model_json(tmp_path, manifest, index, ships)
    # assert
    out = artifacts.read_json(tmp_path / "model.json")
    assert written and out["ship"] == "int8/model.onnx"
    assert out["preprocessing"] == {"mean": [4.9], "std": [6.0]}
    assert [r["stage"] for r in out["runtimes"]] == ["int8", "qdq", None]


def test_model_json_of_a_model_without_its_own_contract_file_comes_from_its_metadata(
        tmp_path, tiny_onnx):
    # setup: an imported model has no model.json beside it
    import shutil

    from compress.measure.ort import read_metadata

    (tmp_path / "imported").mkdir()
    shutil.copyfile(tiny_onnx, tmp_path / "imported" / "model.onnx")
    index = [{"stage": "imported", "path": "imported/model.onnx", "format": "onnx",
              "ship": True, "sha256": "ab", "test_accuracy_pct": 90.0, "contract": None}]
    # execute
    written = write_model_json(tmp_path, {"pipeline": "p", "stages": {}}, index, None)
    # assert
    out = artifacts.read_json(tmp_path / "model.json")
    assert written and out["runtimes"] == []
    assert out["preprocessing"] == read_metadata(tiny_onnx)["compress.preprocessing"]
