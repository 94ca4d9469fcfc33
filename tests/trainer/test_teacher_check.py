"""A teacher damaged by compress's normalised inputs (trained on raw ones) is warned about."""

from __future__ import annotations

from compress.trainer.teacher_check import weak_teacher


def test_a_teacher_near_chance_or_below_its_student_is_weak():
    # execute / assert
    assert "no better than chance (10.0 %)" in weak_teacher(9.0, 10, None, 360)
    assert "less than half-way from chance (10.0 %)" in weak_teacher(50.0, 10, None, 360)
    below = weak_teacher(80.0, 10, 95.0, 360)
    assert "below the student trained without it (95.00 %)" in below
    assert "normalised per channel" in below and "docs/your-model.md" in below


def test_a_good_teacher_is_not():
    # execute / assert: 97 % of 10 classes; 60 % of 2 classes is a kappa of 0.2, so weak
    assert weak_teacher(97.0, 10, 96.0, 360) is None
    assert weak_teacher(97.0, 10, 97.5, 360) is None  # 0.5 pt: noise, not a weak teacher
    assert weak_teacher(60.0, 2, None, 100) is not None
