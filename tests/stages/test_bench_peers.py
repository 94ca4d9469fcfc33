"""Bench `peers:`: PyTorch eager, ORT fp32, ORT quantize_static (defaults, and as a careful user
calls it) and quantize_dynamic defaults built from the teacher and measured in the same run as
the pipeline's models."""

from __future__ import annotations

import copy
import json

import pytest

from compress.config import parse_pipeline
from compress.errors import ConfigError
from compress.measure.peers import CAREFUL, DYNAMIC, STATIC, TORCH
from compress.runner import run_pipeline
from tests.conftest import TINY_PIPELINE


def _with_peers(**bench_fields) -> dict:
    raw = copy.deepcopy(TINY_PIPELINE)
    raw["stages"][2].update({"threads": [1, 0], "batch_sizes": [1, 4],
                             "peers": {"checkpoint": "teacher", "onnx": "teacher_onnx",
                                       "calibration_samples": 64}, "memory": True,
                             **bench_fields})
    return raw


@pytest.fixture(scope="module")
def peers_run(tmp_path_factory):
    raw = _with_peers()
    # a peer may be a baseline
    raw["gates"] = {"baseline": STATIC, "max_test_accuracy_drop_pts": 100}
    cfg = parse_pipeline(raw, "peers.yaml")
    summary = run_pipeline(cfg, tmp_path_factory.mktemp("peers"), progress=False,
                           log=lambda m: None)
    return summary.root, summary


def test_five_peers_are_built_and_measured_in_the_same_run(peers_run):
    # setup
    root, summary = peers_run
    # execute
    bench = json.loads((root / "bench" / "bench.json").read_text())
    # assert: the teacher's ONNX is the ORT fp32 peer; four more are added after it
    models = bench["models"]
    assert list(models) == ["teacher_onnx", TORCH, STATIC, CAREFUL, DYNAMIC]
    assert models["teacher_onnx"]["peer"] == "ORT fp32"
    assert {models[n]["role"] for n in (TORCH, STATIC, CAREFUL, DYNAMIC)} == {"peer"}
    for name in (STATIC, CAREFUL, DYNAMIC):
        assert (root / "bench" / models[name]["path"]).is_file()
    for name, m in models.items():
        assert set(m["latency"]) == {"b1_t1", "b4_t1", "b1_t0", "b4_t0"}, name
        assert m["accuracy_pct"] > 50 and m["memory"]["peak_delta_bytes"] > 0
        assert m["energy"]["b1_t1"]["mj_per_inference"] > 0
    teacher = summary.manifest["stages"]["teacher"]["metrics"]
    assert models[TORCH]["accuracy_pct"] == pytest.approx(teacher["test_accuracy_pct"])
    assert models[TORCH]["runtime"] == "torch" and models[TORCH]["memory"]["runtime"] == "torch"
    used = models[STATIC]["quantization"]
    assert used["calibration"]["samples"] == 64
    assert "MinMax" in used["defaults"]["calibrate_method"]
    assert "QDQ" in used["defaults"]["quant_format"]
    assert used["defaults"]["per_channel"] == "False"
    careful = models[CAREFUL]["quantization"]
    assert careful["arguments"] == {"quant_format": "QDQ", "activation_type": "QUInt8",
                                    "weight_type": "QInt8", "per_channel": True}
    assert careful["pre_processing"].startswith("quant_pre_process")
    # every model's p50 against the machine's limit, MACs from its graph
    assert set(bench["limit"]) == {"t1", "t0"} and bench["limit"]["t1"]["fp32_gmacs"] > 0
    for name, m in models.items():
        assert sum(m["macs"].values()) > 0, name
        assert 0 < m["latency"]["b4_t1"]["pct_of_limit"] < 1000, name
    assert models[CAREFUL]["macs"]["int8"] > 0 and models["teacher_onnx"]["macs"]["int8"] == 0
    assert summary.manifest["gates"][0]["passed"]
    assert "fresh process" in bench["method"]["memory"]
    flat = summary.manifest["stages"]["bench"]["metrics"]
    assert flat[f"{STATIC}.memory_peak_bytes"] == models[STATIC]["memory"]["peak_delta_bytes"]


def test_peer_files_are_int8(peers_run):
    import onnx

    root, _ = peers_run
    static = onnx.load(str(root / "bench" / "peers" / f"{STATIC}.onnx"))
    careful = onnx.load(str(root / "bench" / "peers" / f"{CAREFUL}.onnx"))
    dynamic = onnx.load(str(root / "bench" / "peers" / f"{DYNAMIC}.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in static.graph.node)
    # U8S8: uint8 activations (zero points of QuantizeLinear), int8 weights
    zps = {t.name: t.data_type for t in careful.graph.initializer}
    q = [n for n in careful.graph.node if n.op_type == "QuantizeLinear"]
    assert q and all(zps[n.input[2]] == onnx.TensorProto.UINT8 for n in q)
    assert any(n.op_type in ("DynamicQuantizeLinear", "MatMulInteger")
               for n in dynamic.graph.node)


def test_peers_must_reference_a_checkpoint_and_its_onnx():
    raw = _with_peers(peers={"checkpoint": "teacher_onnx", "onnx": "teacher_onnx"})
    with pytest.raises(ConfigError, match="field 'peers.checkpoint': stage 'teacher_onnx' "
                       "produces an ONNX model, but this field needs a checkpoint"):
        parse_pipeline(raw, "p.yaml")
    raw = _with_peers(peers={"checkpoint": "teacher", "onnx": "ghost"})
    with pytest.raises(ConfigError, match="field 'peers.onnx': stage 'ghost' does not exist"):
        parse_pipeline(raw, "p.yaml")


def test_peer_names_are_reserved():
    raw = _with_peers(models=["teacher_onnx", TORCH])
    with pytest.raises(ConfigError, match="reserved for peers"):
        parse_pipeline(raw, "p.yaml")


def test_peer_files_do_not_claim_the_teachers_figures(peers_run):
    # setup: ORT's quantizers copy the teacher's metadata into the peer files
    from compress.measure.ort import read_metadata

    root, _ = peers_run
    for name in (STATIC, CAREFUL, DYNAMIC):
        # execute
        meta = read_metadata(root / "bench" / "peers" / f"{name}.onnx")
        # assert
        assert "compress.metrics" not in meta
        assert "bench peer" in meta["compress.source"]["made_by"]
        assert meta["compress.input"]["name"] == "input"
        assert meta["compress.min_onnxruntime"]["version"]
