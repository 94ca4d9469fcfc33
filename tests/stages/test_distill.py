"""Stage `distill`: a student learns from the teacher, and the gain is measured."""

from __future__ import annotations

import pytest

from compress import artifacts
from compress.models import count_params
from compress.trainer.distillation import load_model


def test_student_is_smaller_and_reports_accuracy_with_and_without_teacher(compress_run):
    # setup
    root, summary = compress_run
    m = summary.manifest["stages"]["student"]["metrics"]
    # execute
    student, ckpt = load_model(root / "student" / "model.pt", [1, 8, 8])
    history = artifacts.read_json(root / "student" / "history.json")
    # assert
    assert count_params(student) == m["params"] < m["teacher_params"]
    assert ckpt["model"]["width"] == 16
    assert m["distillation_gain_pts"] == round(
        m["distilled_test_accuracy_pct"] - m["without_teacher_test_accuracy_pct"], 4)
    # alpha auto (the default) shipped whichever student was better on val
    shipped = ("without_teacher" if m["alpha_choice"].startswith("labels only")
               else "distilled")
    assert m["test_accuracy_pct"] == m[f"{shipped}_test_accuracy_pct"]
    # both students ran the same epochs from the same seed
    assert len(history["distilled"]) == len(history["without_teacher"]) == 4
    assert m["test_accuracy_pct"] > 30  # 3 tiny epochs: well above chance (10 %)


def test_distilled_student_checkpoint_rebuilds_without_code(compress_run):
    # setup
    root, _ = compress_run
    # execute
    ckpt = artifacts.load_checkpoint(root / "student" / "model.pt")
    # assert: the spec and the stage config are plain data
    assert ckpt["model"]["arch"] == "resnet"
    assert ckpt["config"]["stage"] == "distill" and ckpt["config"]["temperature"] == 1.0


def test_a_student_larger_than_its_teacher_is_warned_about(tmp_path, capsys):
    # setup: a 16-unit MLP teacher and a 64-unit student, one epoch each
    from compress.config import parse_pipeline
    from compress.report import write_report
    from compress.runner import run_pipeline

    mlp = {"epochs": 1, "batch_size": 256, "device": "cpu"}
    cfg = parse_pipeline({"name": "big", "data": {"source": "digits"}, "stages": [
        {"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [16]}, **mlp},
        {"id": "student", "stage": "distill", "teacher": "teacher",
         "model": {"arch": "mlp", "hidden": [64]}, "compare_without_teacher": False, **mlp},
    ]}, "big.yaml")
    # execute
    summary = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None)
    write_report(summary.root)
    # assert: one line in the log, the same words in the metrics and the report
    warning = summary.manifest["stages"]["student"]["metrics"]["warning"]
    assert "more than its teacher's" in warning
    logged = [ln for ln in capsys.readouterr().err.splitlines() if "more than" in ln]
    assert logged == [f"warning: student: {warning}"]
    assert f"- `student`: {warning}" in (summary.root / "report.md").read_text()
    assert summary.manifest["stages"]["teacher"]["metrics"].get("warning") is None


def test_a_teacher_that_makes_the_student_worse_is_warned_about(tmp_path, capsys):
    # setup: a poor teacher (an MLP trained for 20 steps) that the student imitates alone
    # (alpha 1: soft targets only), against the same student trained on the labels
    from compress.config import parse_pipeline
    from compress.runner import run_pipeline

    fast = {"batch_size": 64, "device": "cpu", "patience": None}
    cfg = parse_pipeline({"name": "hurt", "data": {"source": "digits"}, "stages": [
        {"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [64]},
         "epochs": 1, "lr": 0.0002, **fast},
        {"id": "student", "stage": "distill", "teacher": "teacher",
         "model": {"arch": "mlp", "hidden": [16]}, "alpha": 1.0, "epochs": 8, "lr": 0.005,
         **fast},
    ]}, "hurt.yaml")
    # execute
    summary = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None)
    # assert: the gain is negative beyond noise, and the run says so in the metrics and the log
    m = summary.manifest["stages"]["student"]["metrics"]
    assert m["without_teacher_test_accuracy_pct"] - m["test_accuracy_pct"] >= 1.0
    assert m["warning"].startswith("the same student trained without the teacher is ")
    assert "distillation hurt this student" in m["warning"]
    assert f"warning: student: {m['warning']}" in capsys.readouterr().err


@pytest.mark.slow  # ~45 s on 2 loaded cores; the fast sibling: the loss test below
def test_distillation_learns_from_the_unlabeled_images(tmp_path):
    # setup: 5 labels per class on digits, the other ~1,100 training images unlabeled; a
    # teacher trained on every label (a plain checkpoint-free module is enough here)
    import numpy as np

    import compress
    from compress.data import DigitsData, load_dataset

    full = load_dataset(DigitsData())
    few = load_dataset(DigitsData(labels_per_class=5))
    teacher = compress.train({"arch": "mlp", "hidden": [64]}, full, epochs=6, lr=0.01,
                             batch_size=128, device="cpu").model
    opts = {"epochs": 6, "lr": 0.01, "alpha": 1.0, "device": "cpu", "patience": None,
            "batch_size": 128, "compare_without_teacher": False}
    student = {"arch": "mlp", "hidden": [32]}
    # execute
    labeled = compress.distill(teacher, student, few, transfer="labeled", **opts)
    unlabeled = compress.distill(teacher, student, few, transfer="unlabeled", **opts)
    # assert: the transfer set counted the unlabeled images, and they taught the student more
    assert unlabeled.metrics["transfer_samples"] == 50 + len(few.x_unlabeled)
    assert labeled.metrics["transfer_samples"] == 50
    assert unlabeled.metrics["train_samples"] == 50  # labelled training samples
    assert unlabeled.metrics["test_accuracy_pct"] > labeled.metrics["test_accuracy_pct"] + 10
    assert np.bincount(few.y_train).tolist() == [5] * 10


def test_unlabeled_targets_count_in_the_soft_term_only():
    # setup
    import torch

    from compress.trainer.distillation import distillation_loss

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.tensor([1, -1, 2, -1, -1, 0])
    # execute
    mixed = distillation_loss(s, t, y, 2.0, 0.5, unlabeled=True)
    none = distillation_loss(s, t, torch.full((6,), -1), 2.0, 0.5, unlabeled=True)
    # assert: CE over the three labelled rows only; none labelled leaves the soft term alone
    soft = distillation_loss(s, t, y.clamp(min=0), 2.0, 1.0)
    ce = torch.nn.functional.cross_entropy(s[y >= 0], y[y >= 0])
    torch.testing.assert_close(mixed, 0.5 * soft + 0.5 * ce)
    torch.testing.assert_close(none, 0.5 * soft)


def test_alpha_auto_keeps_labels_only_when_the_teacher_is_bad(capsys):
    # setup: a randomly initialised, confidently wrong teacher (large random weights) taught at
    # temperature 1; the student is a small MLP on digits
    import torch

    import compress

    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        teacher[1].weight.mul_(30)
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                  torch.nn.Linear(32, 10))
    # execute
    r = compress.distill(teacher, student, "digits", alpha="auto", temperature=1, epochs=4,
                         lr=0.01, batch_size=128, patience=None, baseline=False, device="cpu")
    # assert: labels only won on val, so the student shipped is the labels-only one, and the
    # run records which and why
    m = r.metrics
    assert m["without_teacher_val_accuracy_pct"] > m["distilled_val_accuracy_pct"]
    assert m["alpha"] == 0.0
    assert m["alpha_choice"].startswith("labels only (alpha 0): val accuracy")
    assert m["test_accuracy_pct"] == m["without_teacher_test_accuracy_pct"]
    assert m["val_accuracy_pct"] == m["without_teacher_val_accuracy_pct"]
    # the teacher did not hurt the student that shipped
    assert "distillation hurt" not in (m["warning"] or "")
    assert "alpha auto: labels only" in capsys.readouterr().err


def test_alpha_auto_needs_the_labels_only_comparison():
    # setup
    import pytest
    import torch

    import compress
    from compress.errors import ConfigError
    from compress.stages.distill import DistillConfig

    # execute / assert: the API and the config class refuse it in one line
    with pytest.raises(ConfigError, match="alpha: auto .* needs compare_without_teacher: true"):
        compress.distill(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
                         {"arch": "mlp"}, "digits", alpha="auto",
                         compare_without_teacher=False)
    with pytest.raises(ValueError, match="not a weight from 0 to 1"):
        DistillConfig(id="s", teacher="t", alpha=1.5)
