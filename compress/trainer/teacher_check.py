"""Is the teacher any good on the inputs compress feeds it? A teacher trained on raw inputs
(pixels 0..255, unscaled features) sees normalised ones here (per channel, train mean and std)
and is silently damaged; its accuracy on our test split says so."""

from __future__ import annotations

# Below half-way from chance to 100 % (Cohen's kappa 0.5), or below the student it teaches:
# no teacher worth distilling from scores that, on inputs it was trained on.
MIN_KAPPA = 0.5


def weak_teacher(teacher_pct: float, num_classes: int, alone_pct: float | None,
                 test_samples: int) -> str | None:
    """A warning when the teacher's test accuracy on compress's inputs is far below what a
    teacher should reach; None otherwise."""
    chance = 100.0 / num_classes
    kappa = (teacher_pct - chance) / (100.0 - chance)
    below_alone = alone_pct is not None and alone_pct - teacher_pct >= 1.0 and \
        round((alone_pct - teacher_pct) * test_samples / 100) >= 5
    if kappa >= MIN_KAPPA and not below_alone:
        return None
    why = (f"below the student trained without it ({alone_pct:.2f} %)" if below_alone else
           f"less than half-way from chance ({chance:.1f} %) to 100 %" if kappa > 0 else
           f"no better than chance ({chance:.1f} %)")
    return (f"the teacher scores {teacher_pct:.2f} % on the test split as compress feeds it, "
            f"{why}; its inputs here are normalised per channel with the train split's mean "
            "and std: a teacher trained on raw inputs sees other numbers, so train it on "
            "compress's inputs or put its own preprocessing inside its forward "
            "(docs/your-model.md)")
