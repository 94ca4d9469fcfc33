"""Latency harness: bootstrap CI of p50, interleaving of any callables (ORT and PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest

from compress.measure.latency import bootstrap_median_ci, measure_callables, summarize


@pytest.mark.parametrize("n", [201, 1000])
def test_bootstrap_ci_contains_p50_and_matches_brute_force_resampling(n):
    # setup: skewed like latencies
    x = np.random.default_rng(3).lognormal(0.0, 0.5, size=n)
    # execute
    low, high = bootstrap_median_ci(x, resamples=4000, seed=1)
    rng = np.random.default_rng(2)
    brute = np.median(x[rng.integers(0, n, size=(4000, n))], axis=1)
    b_low, b_high = np.percentile(brute, [2.5, 97.5])
    # assert
    assert low <= np.median(x) <= high
    width = b_high - b_low
    assert abs(low - b_low) < 0.15 * width and abs(high - b_high) < 0.15 * width


def test_bootstrap_ci_is_seeded_and_shrinks_with_more_runs():
    rng = np.random.default_rng(0)
    small, large = rng.lognormal(size=200), rng.lognormal(size=20_000)
    assert bootstrap_median_ci(small) == bootstrap_median_ci(small)
    lo_s, hi_s = bootstrap_median_ci(small)
    lo_l, hi_l = bootstrap_median_ci(large)
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_summary_carries_the_ci():
    st = summarize([i * 1_000_000 for i in range(1, 102)])  # 1..101 ms
    assert st.p50_ms == 51.0
    assert st.p50_ci_low_ms <= 51.0 <= st.p50_ci_high_ms
    assert st.ci_level == 0.95 and st.ci_resamples == 2000


def test_candidates_of_any_kind_interleave_until_each_has_enough():
    # setup: two callables standing in for an ORT session and a torch module
    order = []
    candidates = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    # execute
    stats = measure_callables(candidates, warmup_runs=1, min_runs=30, min_time_s=0.0, chunk=10)
    # assert: both measured, and the timed runs alternate in chunks rather than a-then-b
    assert stats["a"].runs == stats["b"].runs == 30
    timed = order[2:]
    switches = sum(1 for x, y in zip(timed, timed[1:], strict=False) if x != y)
    assert switches >= 3


def test_cold_calls_each_follow_an_eviction_and_interleave_with_the_warm_chunks():
    # setup: a log of calls and evictions, in order
    log = []
    candidates = {"a": lambda: log.append("a"), "b": lambda: log.append("b")}
    # execute
    stats = measure_callables(candidates, warmup_runs=0, min_runs=20, min_time_s=0.0, chunk=5,
                              cold_runs=3, evict=lambda: log.append("evict"))
    # assert: 3 cold calls per model, each right after an eviction
    assert stats["a"].cold.runs == stats["b"].cold.runs == 3
    assert log.count("evict") == 6
    after = [log[i + 1] for i, x in enumerate(log) if x == "evict"]
    assert sorted(after) == ["a"] * 3 + ["b"] * 3
    # the cold calls are spread over the warm measurement, not all after it
    assert log.index("evict") < len(log) // 2 < len(log) - log[::-1].index("evict")
    assert stats["a"].runs == 20 and "cold" in stats["a"].as_dict()


def test_without_cold_runs_there_is_no_cold_figure():
    stats = measure_callables({"a": lambda: None}, warmup_runs=0, min_runs=5, min_time_s=0.0)
    assert stats["a"].cold is None and "cold" not in stats["a"].as_dict()


def test_the_evictor_touches_more_than_the_caches():
    from compress.measure.latency import CacheEvictor
    from compress.measure.system import cache_sizes

    caches = cache_sizes()
    evict = CacheEvictor()
    assert evict.size_bytes >= caches["l2_bytes"] + caches["l3_bytes"]
    assert evict() == -(-evict.size_bytes // 64)  # one byte (of value 1) per 64-byte line


def test_cache_sizes_fall_back_when_nothing_tells_them(monkeypatch):
    from compress.measure import system

    system.cache_sizes.cache_clear()
    monkeypatch.setattr(system, "_sysfs_caches", lambda: {})
    monkeypatch.setattr(system, "_command_caches", lambda: {})
    try:
        caches = system.cache_sizes()
    finally:
        system.cache_sizes.cache_clear()
    assert caches["source"] == "fallback" and caches["l3_bytes"] == system.FALLBACK_CACHES[
        "l3_bytes"]


def test_cache_sizes_read_sysfs_sizes():
    from compress.measure.system import _size_bytes

    assert _size_bytes("48K\n") == 48 * 1024 and _size_bytes("107520K") == 105 * 1024**2
    assert _size_bytes("2M") == 2 * 1024**2 and _size_bytes("512") == 512


def test_an_input_sequence_runs_every_feed_through_every_session_interleaved():
    from compress.measure.latency import measure_input_sequence

    # setup: sessions that record which feed they ran
    calls = []

    class Session:
        def __init__(self, name):
            self.name = name

        def run(self, _outputs, feed):
            calls.append((self.name, feed["i"]))

    feeds = [{"i": i} for i in range(4)]
    # execute
    stats = measure_input_sequence({"a": Session("a"), "b": Session("b")}, feeds,
                                   warmup_feeds=1, min_passes=2, min_time_s=0.0)
    timed = calls[2:]  # after one warm-up feed each
    # assert: 2 passes x 4 feeds each, feed by feed, the order of sessions rotating
    assert stats["a"].runs == stats["b"].runs == 8
    assert [i for _, i in timed] == [i for _ in range(2) for i in range(4) for _ in "ab"]
    assert [n for n, _ in timed[:4]] == ["a", "b", "b", "a"]
