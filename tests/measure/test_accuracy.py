"""Accuracy with its uncertainty: Wilson intervals and McNemar's exact test."""

from __future__ import annotations

import numpy as np
import pytest

from compress.measure.accuracy import (
    accuracy_record,
    describe_paired,
    find_paired,
    mcnemar_exact,
    paired_tests,
    wilson_interval,
)


def test_wilson_interval_known_values():
    # 0 of 10 right: the upper bound is z^2 / (n + z^2) with z = 1.95996
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(100 * 3.84146 / 13.84146, abs=1e-3)
    low, high = wilson_interval(10, 10)
    assert high == 100.0 and low == pytest.approx(100 - 100 * 3.84146 / 13.84146, abs=1e-3)
    # symmetric around 50 % at half right, and narrower with more samples
    low, high = wilson_interval(50, 100)
    assert low + high == pytest.approx(100.0)
    assert wilson_interval(500, 1000)[1] - wilson_interval(500, 1000)[0] < high - low


@pytest.mark.parametrize(("b", "c", "p"), [
    (1, 6, 0.125),              # 2 * (1 + 7) / 2**7
    (0, 10, 2 / 2**10),
    (5, 5, 1.0),
    (0, 0, 1.0),
    (3, 1, 0.625),              # 2 * (1 + 4) / 2**4
])
def test_mcnemar_exact_matches_the_binomial_tail(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p)
    assert mcnemar_exact(c, b) == pytest.approx(p)


def test_paired_tests_count_the_disagreements_on_the_same_samples():
    # setup: 10 samples; a gets 0-7 right, b gets 2-9 right
    y = np.zeros(10, dtype=np.int64)
    a = np.where(np.arange(10) < 8, 0, 1)
    b = np.where(np.arange(10) >= 2, 0, 1)
    # execute
    (t,) = paired_tests({"a": a, "b": b}, y)
    # assert
    assert (t["only_a_correct"], t["only_b_correct"]) == (2, 2)
    assert t["p_value"] == 1.0 and not t["significant"] and t["drop_pts"] == 0.0
    swapped = find_paired([t], "b", "a")
    assert swapped["a"] == "b" and swapped["only_a_correct"] == 2
    assert "not significant" in describe_paired(t)
    assert find_paired([t], "a", "c") is None


def test_accuracy_record_carries_the_interval():
    rec = accuracy_record(np.array([0, 1, 1, 1]), np.array([0, 1, 1, 0]))
    assert rec["correct"] == 3 and rec["accuracy_pct"] == 75.0
    low, high = rec["accuracy_ci_pct"]
    assert low < 75.0 < high
