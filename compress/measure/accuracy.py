"""Test accuracy with its uncertainty: a Wilson interval for each model, and McNemar's exact
test for the difference between two models scored on the same test samples.

On a test split of a few hundred samples one sample is a fraction of a point, so "+0.28 pts"
can be one image; these tell a reader (and the report beside a gate) a loss from noise.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

ACC_LEVEL = 0.95
SIGNIFICANCE = 0.05


def wilson_interval(correct: int, n: int, level: float = ACC_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion, in percent: unlike the normal approximation it
    stays inside [0, 100] and is not empty at 0 or n correct."""
    if n <= 0:
        return 0.0, 100.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exactly 0 and 100 at the ends (rounding would leave 3e-15 there)
    low = 0.0 if correct == 0 else max(0.0, (centre - half) * 100)
    high = 100.0 if correct == n else min(100.0, (centre + half) * 100)
    return low, high


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided p-value of McNemar's exact test: `b` samples only the first model gets right,
    `c` only the second. Under "equally accurate" each disagreement is a fair coin, so the
    p-value is twice the binomial tail of the rarer outcome (capped at 1)."""
    n = b + c
    if n == 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, 2 * binom.cdf(min(b, c), n, 0.5)))


def accuracy_record(pred: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, correct count and the Wilson interval of one model's predicted classes."""
    correct = int((np.asarray(pred) == np.asarray(y)).sum())
    low, high = wilson_interval(correct, len(y))
    return {"accuracy_pct": correct / len(y) * 100, "correct": correct,
            "accuracy_ci_pct": [low, high], "accuracy_ci_level": ACC_LEVEL}


def paired_test(a: str, b: str, preds: dict[str, np.ndarray], y: np.ndarray) -> dict:
    """McNemar's exact test of model `a` against `b` on the same samples.

    Returns:
        {"a", "b", "only_a_correct" (McNemar's b), "only_b_correct" (c), "p_value",
        "significant" (p < 0.05), "drop_pts" (accuracy of a minus b)}.
    """
    right_a, right_b = preds[a] == y, preds[b] == y
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p = mcnemar_exact(only_a, only_b)
    return {"a": a, "b": b, "only_a_correct": only_a, "only_b_correct": only_b,
            "p_value": p, "significant": p < SIGNIFICANCE,
            "drop_pts": (only_a - only_b) / len(y) * 100}


def paired_tests(preds: dict[str, np.ndarray], y: np.ndarray) -> list[dict]:
    """`paired_test` for every pair of models, in the order given (a listed before b)."""
    return [paired_test(a, b, preds, y) for a, b in combinations(list(preds), 2)]


def find_paired(tests: list[dict], a: str, b: str) -> dict | None:
    """The test of `a` against `b` (drop = accuracy of a minus b), from either order."""
    for t in tests:
        if (t["a"], t["b"]) == (a, b):
            return t
        if (t["a"], t["b"]) == (b, a):
            return {**t, "a": a, "b": b, "only_a_correct": t["only_b_correct"],
                    "only_b_correct": t["only_a_correct"], "drop_pts": -t["drop_pts"]}
    return None


def describe_paired(t: dict) -> str:
    """'not significant (McNemar exact p = 0.62; 3 samples only teacher gets right, 2 only
    student)'."""
    verdict = "significant" if t["significant"] else "not significant"
    return (f"{verdict} (McNemar exact p = {t['p_value']:.2g}; {t['only_a_correct']} test "
            f"sample(s) only {t['a']} gets right, {t['only_b_correct']} only {t['b']})")
