"""Stage `train`: writes a checkpoint that describes itself and rebuilds without pickled code."""

from __future__ import annotations

import torch

from compress.artifacts import load_checkpoint
from compress.data import DigitsData, load_dataset
from compress.models import build_model
from compress.trainer.training import predict_logits


def test_checkpoint_describes_itself_and_rebuilds(tiny_checkpoint):
    # execute
    ckpt = load_checkpoint(tiny_checkpoint)
    model = build_model(ckpt["model"], ckpt["input_shape"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    # assert
    assert ckpt["model"]["arch"] == "mlp" and ckpt["input_shape"] == [1, 8, 8]
    assert ckpt["data"]["source"] == "digits" and ckpt["config"]["epochs"] == 2
    assert len(ckpt["preprocessing"]["mean"]) == 1 and ckpt["class_labels"][3] == "3"
    data = load_dataset(DigitsData(**{k: v for k, v in ckpt["data"].items()}))
    logits = predict_logits(model, data.x_test, torch.device("cpu"))
    acc = float((logits.argmax(1).numpy() == data.y_test).mean() * 100)
    assert abs(acc - ckpt["metrics"]["test_accuracy_pct"]) < 1e-6


def test_history_and_metrics_are_written(tiny_run):
    root, summary = tiny_run
    metrics = summary.manifest["stages"]["teacher"]["metrics"]
    assert (root / "teacher" / "history.json").is_file()
    assert metrics["epochs_run"] == 2 and metrics["device"] == "cpu"
    assert metrics["precision"] == "fp32" and metrics["world_size"] == 1
    assert metrics["train_cpu_time_s"] > 0
    # timings differ from run to run: kept out of the checkpoint, so its bytes do not
    ckpt = load_checkpoint(root / "teacher" / "model.pt")
    assert "train_wall_time_s" not in ckpt["metrics"] and "train_cpu_time_s" not in ckpt["metrics"]
    assert metrics["params"] == 64 * 32 + 32 + 32 * 10 + 10
