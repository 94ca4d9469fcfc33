"""Stage `distill`: a student learns from the teacher, and the gain is measured."""

from __future__ import annotations

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
        m["test_accuracy_pct"] - m["without_teacher_test_accuracy_pct"], 4)
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
    assert ckpt["config"]["stage"] == "distill" and ckpt["config"]["temperature"] == 4.0
