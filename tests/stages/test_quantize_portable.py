"""Stage `quantize` with `target: portable`, and `bench` with `runtimes:`, end to end on the tiny
digits MLP: the portable build loads in every installed runtime, the runtime table and the
ship choice per runtime reach the report, README.md and model.json."""

from __future__ import annotations

import copy
import json

import pytest

from compress.config import parse_pipeline
from compress.errors import ConfigError
from tests.conftest import TINY_PIPELINE

PORTABLE = {"id": "portable", "stage": "quantize", "input": "teacher_onnx", "target": "portable",
            "activation_type": "uint8", "reduce_range": "false", "select_time_s": 0.05,
            "select_batch_sizes": [1]}


def _raw(**quantize) -> dict:
    raw = copy.deepcopy(TINY_PIPELINE)
    raw["stages"].insert(2, {**PORTABLE, **quantize})
    raw["stages"][-1].update(models=["teacher_onnx", "portable"],
                             runtimes=["onnxruntime", "openvino", "onnxruntime-web"],
                             runtime_time_s=0.02, energy_time_s=0, cold_runs=0)
    return raw


def test_portable_refuses_qoperator_at_load_time():
    with pytest.raises(ConfigError, match="target: portable needs format: qdq, not qoperator"):
        parse_pipeline(_raw(format="qoperator"), "x.yaml")


@pytest.mark.slow
def test_portable_build_and_runtime_table_end_to_end(tmp_path):
    # setup
    from compress.runner import run_pipeline

    cfg = parse_pipeline(_raw(), "x.yaml")
    # execute
    summary = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None)
    # assert: the portable build was checked in the runtimes installed here
    root = summary.root
    metrics = summary.manifest["stages"]["portable"]["metrics"]
    assert metrics["target"] == "portable" and metrics["portable_opset"] == 19
    assert metrics["contrib_ops"] == 0 and metrics["portable_runtimes_agree_pct"] == 100.0
    assert "onnx-reference" in metrics["portable_runtimes"]
    bench = json.loads((root / "bench" / "bench.json").read_text())
    table = bench["runtimes"]["models"]["portable"]
    assert table["onnxruntime"]["agree"] == bench["test_samples"]
    for runtime, info in bench["runtimes"]["runtimes"].items():
        if info["status"] == "measured":
            assert table[runtime]["loaded"] and table[runtime]["agree"] == bench["test_samples"]
    assert "### Runtimes" in (root / "bench" / "bench.md").read_text()
    assert "## Which file to ship, per runtime" in (root / "README.md").read_text()
    model_json = json.loads((root / "model.json").read_text())
    assert [r["runtime"] for r in model_json["runtimes"]] == list(bench["runtimes"]["runtimes"])
    assert model_json["preprocessing"]["mean"] and model_json["input"]["name"] == "input"
