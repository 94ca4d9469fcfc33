"""Stage `prune`: channels removed for real, residual model still valid, checkpoint rebuilds."""

from __future__ import annotations

import pytest
import torch

from compress import artifacts
from compress.config import parse_pipeline
from compress.models import build_model, count_params
from compress.runner import run_single
from compress.stages import Artifact
from compress.stages.prune import PruneConfig
from compress.trainer.distillation import load_model


def test_structured_pruning_really_shrinks_a_residual_model(compress_run):
    # setup
    root, summary = compress_run
    m = summary.manifest["stages"]["pruned"]["metrics"]
    # execute
    model, ckpt = load_model(root / "pruned" / "model.pt", [1, 8, 8])
    student, _ = load_model(root / "student" / "model.pt", [1, 8, 8])
    # assert: fewer parameters and MACs, real channel counts in the spec
    assert count_params(model) == m["params"] < m["params_before"] == count_params(student)
    assert m["macs"] < m["macs_before"]
    spec = ckpt["model"]
    assert spec["blocks"] and spec["stem"] < 16
    for b in spec["blocks"]:
        assert b["mid"] % 4 == 0 and b["out"] % 4 == 0  # round_to: 4
    # the residual model runs and the stored spec rebuilds it exactly
    out = model(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10)
    rebuilt = build_model(spec, [1, 8, 8], 10)
    rebuilt.load_state_dict(ckpt["state_dict"], strict=True)


def test_pruned_export_is_smaller_than_the_student(compress_run, tmp_path):
    # setup
    root, summary = compress_run
    from compress.stages.export import ExportConfig

    cfg = ExportConfig(id="e", input="student")
    art = Artifact("student", "checkpoint", root / "student" / "model.pt",
                   artifacts.sha256_file(root / "student" / "model.pt"))
    data_cfg = parse_pipeline({"name": "x", "data": {"source": "digits"},
                               "stages": [{"id": "t", "stage": "train"}]}, "x").data
    # execute
    run_single(cfg, data_cfg, {"student": art}, tmp_path / "unpruned")
    # assert
    unpruned = (tmp_path / "unpruned" / "model.onnx").stat().st_size
    pruned = summary.manifest["stages"]["student_fp32"]["metrics"]["size_bytes"]
    assert pruned < 0.75 * unpruned


def _prune(root, tmp_path, **fields):
    data_cfg = parse_pipeline({"name": "x", "data": {"source": "digits"},
                               "stages": [{"id": "t", "stage": "train"}]}, "x").data
    cfg = PruneConfig(id="p", input="student", device="cpu", batch_size=128, **fields)
    path = root / "student" / "model.pt"
    art = Artifact("student", "checkpoint", path, artifacts.sha256_file(path))
    metrics = run_single(cfg, data_cfg, {"student": art}, tmp_path / "p").metrics
    return metrics, artifacts.load_checkpoint(tmp_path / "p" / "model.pt")


def test_unstructured_pruning_is_reported_as_sparsity(compress_run, tmp_path):
    # execute
    metrics, ckpt = _prune(compress_run[0], tmp_path, method="unstructured", ratio=0.6,
                           steps=2, epochs=0, global_pruning=True)
    # assert: same dense shapes, 60 % zeros, said honestly
    assert metrics["params"] == metrics["params_before"]
    assert metrics["sparsity_pct"] == pytest.approx(60, abs=1.5)
    assert "no speed-up" in metrics["note"]
    assert ckpt["model"].get("blocks") is None


@pytest.mark.parametrize("importance", ["taylor", "bn_scale", "l1"])
def test_every_importance_criterion_prunes_globally(compress_run, tmp_path, importance):
    # execute
    metrics, ckpt = _prune(compress_run[0], tmp_path, importance=importance, ratio=0.4,
                           steps=1, epochs=0, global_pruning=True, round_to=2)
    # assert
    assert metrics["params"] < metrics["params_before"]
    model = build_model(ckpt["model"], [1, 8, 8], 10)
    model.load_state_dict(ckpt["state_dict"], strict=True)


def test_mlp_hidden_units_are_pruned_to_multiples(tiny_checkpoint, tmp_path):
    # setup: the tiny MLP teacher (hidden [32])
    data_cfg = parse_pipeline({"name": "x", "data": {"source": "digits"},
                               "stages": [{"id": "t", "stage": "train"}]}, "x").data
    cfg = PruneConfig(id="p", input="m", device="cpu", ratio=0.5, steps=1, epochs=1, round_to=8)
    art = Artifact("m", "checkpoint", tiny_checkpoint, artifacts.sha256_file(tiny_checkpoint))
    # execute
    metrics = run_single(cfg, data_cfg, {"m": art}, tmp_path / "p").metrics
    ckpt = artifacts.load_checkpoint(tmp_path / "p" / "model.pt")
    # assert
    assert ckpt["model"]["hidden"] == [16]
    assert metrics["params"] < metrics["params_before"]


def test_unstructured_needs_a_magnitude_criterion():
    # execute / assert
    with pytest.raises(ValueError, match="importance l1 or l2"):
        PruneConfig(id="p", input="s", method="unstructured", importance="taylor")


def test_prune_reports_the_channels_kept_per_layer(tiny_checkpoint, tmp_path):
    # setup: hidden [32], ratio 0.3 asks 22.4 units -> 24 (torch-pruning alone gives 16)
    data_cfg = parse_pipeline({"name": "x", "data": {"source": "digits"},
                               "stages": [{"id": "t", "stage": "train"}]}, "x").data
    cfg = PruneConfig(id="p", input="m", device="cpu", ratio=0.3, steps=1, epochs=0, round_to=8)
    art = Artifact("m", "checkpoint", tiny_checkpoint, artifacts.sha256_file(tiny_checkpoint))
    # execute
    metrics = run_single(cfg, data_cfg, {"m": art}, tmp_path / "p").metrics
    report = artifacts.read_json(tmp_path / "p" / "prune.json")
    # assert
    assert artifacts.load_checkpoint(tmp_path / "p" / "model.pt")["model"]["hidden"] == [24]
    assert metrics["channels_kept"].endswith("32->24")
    assert metrics["channel_warnings"] == 0 and metrics["warning"] is None
    assert report["layers"][0]["kept"] == 24 and report["layers"][0]["asked"] == 22.4
