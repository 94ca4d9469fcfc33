"""The Pareto front and the pick, on hand-made trials whose answer is known."""

from __future__ import annotations

from compress.search.pareto import dominates, pareto_front, pick, to_csv, to_markdown


def _t(n, acc, ms):
    return {"number": n, "val_accuracy_pct": acc, "p50_ms": ms, "status": "complete"}


TRIALS = [_t(0, 90.0, 1.0), _t(1, 95.0, 2.0), _t(2, 94.0, 3.0),  # 2: dominated by 1
          _t(3, 97.0, 5.0), _t(4, 89.0, 1.5),                       # 4: dominated by 0
          _t(5, 80.0, 0.5), _t(6, 95.0, 2.0)]                       # 6: a tie with 1


def test_front_keeps_exactly_the_non_dominated_trials_fastest_first():
    # setup / execute
    front = pareto_front(TRIALS)
    # assert
    assert [t["number"] for t in front] == [5, 0, 1, 3]


def test_dominance_needs_one_strict_improvement():
    # setup / execute / assert
    assert dominates(_t(0, 90, 1), _t(1, 90, 2))
    assert not dominates(_t(0, 90, 1), _t(1, 90, 1))
    assert not dominates(_t(0, 90, 1), _t(1, 91, 2))


def test_pick_is_the_fastest_trial_inside_the_constraint():
    # setup / execute / assert
    assert pick(TRIALS, 94.5)["number"] == 1
    assert pick(TRIALS, 85.0)["number"] == 0
    assert pick(TRIALS, 79.0)["number"] == 5
    assert pick(TRIALS, 99.0) is None


def test_tables_list_every_trial():
    # setup / execute
    csv_text, md = to_csv(TRIALS), to_markdown(TRIALS)
    # assert
    assert len(csv_text.strip().splitlines()) == 1 + len(TRIALS)
    assert len(md.strip().splitlines()) == 2 + len(TRIALS)
