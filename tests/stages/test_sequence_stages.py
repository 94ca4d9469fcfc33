"""rnn and transformer models through the stages on MNIST-1D: export with parity at any batch,
transformer heads and feed-forward neurons pruned for real, rnn pruning refused, int8 that
measures dynamic quantization for recurrent ops and says which ops ended int8, and a transformer
teacher distilled into a CNN student."""

from __future__ import annotations

import json

import pytest
import torch

from compress import artifacts
from compress.errors import StageError
from compress.models import build_model
from compress.runner import run_single
from compress.stages import Artifact
from compress.stages.prune import PruneConfig
from compress.trainer.distillation import load_model
from tests.conftest import _run_once

FAST = {"batch_size": 64, "lr": 0.01, "device": "cpu", "patience": None}
QUICK_Q = {"calibration": {"samples": 64}, "select_time_s": 0.05, "select_batch_sizes": [1]}
SEQ_PIPELINE = {
    "name": "seq",
    "data": {"source": "mnist1d", "num_samples": 600, "seed": 0},
    "stages": [
        {"id": "vit", "stage": "train", "epochs": 2, **FAST,
         "model": {"arch": "transformer", "layers": 1, "width": 16, "heads": 4, "ff": 32,
                   "patch": 4}},
        {"id": "vit_pruned", "stage": "prune", "input": "vit", "teacher": "vit",
         "head_ratio": 0.5, "ratio": 0.5, "steps": 2, "epochs": 1, "round_to": 4, **FAST},
        {"id": "vit_onnx", "stage": "export", "input": "vit_pruned"},
        {"id": "cnn", "stage": "distill", "teacher": "vit", "epochs": 2, **FAST,
         "model": {"arch": "resnet", "width": 4, "stages": 1},
         "compare_without_teacher": False},
        {"id": "gru", "stage": "train", "epochs": 1, **FAST,
         "model": {"arch": "rnn", "cell": "gru", "hidden": 8, "bidirectional": True}},
        {"id": "gru_onnx", "stage": "export", "input": "gru"},
        {"id": "gru_int8", "stage": "quantize", "input": "gru_onnx", **QUICK_Q},
        {"id": "lstm", "stage": "train", "epochs": 1, **FAST,
         "model": {"arch": "rnn", "cell": "lstm", "hidden": 8, "readout": "mean"}},
        {"id": "lstm_onnx", "stage": "export", "input": "lstm"},
        {"id": "lstm_int8", "stage": "quantize", "input": "lstm_onnx", "mode": "dynamic",
         **QUICK_Q},
    ],
}


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    return _run_once(tmp_path_factory, SEQ_PIPELINE)


def _metrics(run, stage: str) -> dict:
    return run[1].manifest["stages"][stage]["metrics"]


@pytest.mark.parametrize("stage", ["vit_onnx", "gru_onnx", "lstm_onnx"])
def test_sequence_models_export_with_parity(seq_run, stage):
    # assert: the export stage compared ORT with PyTorch at batch 512 and batch 1
    m = _metrics(seq_run, stage)
    assert m["parity_max_abs_diff"] < 1e-4
    assert m["ort_test_accuracy_pct"] == pytest.approx(m["torch_test_accuracy_pct"], abs=0.2)


def test_transformer_pruning_removes_heads_and_ff_neurons(seq_run):
    # setup
    root = seq_run[0]
    m = _metrics(seq_run, "vit_pruned")
    # execute
    model, ckpt = load_model(root / "vit_pruned" / "model.pt", [1, 40])
    # assert: 4 -> 2 heads (head_dim 4 kept), 32 -> 16 feed-forward neurons, width kept
    assert ckpt["model"]["blocks"] == [{"heads": 2, "ff": 16}]
    attn = model.layers[0].attn
    assert attn.num_heads == 2 and attn.qkv.weight.shape == (3 * 2 * 4, 16)
    assert model.layers[0].ff.fc1.out_features == 16 and model.head.in_features == 16
    assert m["params"] < m["params_before"] and m["macs"] < m["macs_before"]
    rebuilt = build_model(ckpt["model"], [1, 40], 10).eval()
    rebuilt.load_state_dict(ckpt["state_dict"], strict=True)
    x = torch.randn(5, 1, 40)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_rnn_pruning_is_refused_naming_what_is_supported(seq_run, tmp_path):
    # setup
    root = seq_run[0]
    path = root / "gru" / "model.pt"
    art = Artifact("gru", "checkpoint", path, artifacts.sha256_file(path))
    cfg = PruneConfig(id="p", input="gru", epochs=1, device="cpu")
    data_cfg = _data_cfg()
    # execute / assert
    with pytest.raises(StageError, match="pruning supports mlp, resnet and transformer"):
        run_single(cfg, data_cfg, {"gru": art}, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def _data_cfg():
    from compress.config import parse_pipeline

    return parse_pipeline(SEQ_PIPELINE, "seq.yaml").data


def test_gru_quantization_measures_dynamic_and_says_gru_stays_float(seq_run):
    # setup
    root = seq_run[0]
    m = _metrics(seq_run, "gru_int8")
    # execute
    report = json.loads((root / "gru_int8" / "quantize.json").read_text())
    # assert: dynamic settings were measured beside the static ones; ORT has no int8 GRU
    names = [c["setting"] for c in report["candidates"]]
    assert any(n.startswith("dynamic") for n in names) and any(n.startswith("q") for n in names)
    assert m["quantization_mode"] in ("static", "dynamic")
    assert "GRU x1" in m["float_ops"] and "GRU" not in m["int8_ops"]
    assert "GRU x1 stay fp32" in m["note"]
    assert 0 < m["int8_weight_fraction"] < 0.5  # only the classifier's weights are int8


def test_lstm_dynamic_quantization_runs_the_lstm_in_int8(seq_run):
    # assert: ORT's DynamicQuantizeLSTM carries the recurrent weights in int8
    m = _metrics(seq_run, "lstm_int8")
    assert m["quantization_mode"] == "dynamic" and m["calibration_method"] is None
    assert "DynamicQuantizeLSTM x1" in m["int8_ops"] and m["note"] is None
    assert m["int8_weight_fraction"] > 0.5
    assert m["accuracy_drop_pts"] < 5


def test_transformer_teacher_distills_into_a_cnn_student(seq_run):
    # setup
    root = seq_run[0]
    m = _metrics(seq_run, "cnn")
    # execute
    _, ckpt = load_model(root / "cnn" / "model.pt", [1, 40])
    history = json.loads((root / "cnn" / "history.json").read_text())["distilled"]
    # assert: a resnet student learned from the transformer teacher's outputs on the same inputs
    assert ckpt["model"]["arch"] == "resnet" and m["teacher_params"] > m["params"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
