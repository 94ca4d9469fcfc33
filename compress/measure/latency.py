"""Latency: warm-up, then candidates interleaved in small chunks (so drift and noisy neighbours
hit all alike) until each has both enough runs and enough measured time; p50/p90/p99 with a
bootstrap confidence interval for p50.

Warm: the model runs steadily, its weights stay in the caches. Cold: before each timed call a
buffer larger than the caches is touched (`CacheEvictor`), as when an app runs the model between
other work; cold rounds are interleaved with the warm chunks, one call per candidate each.

A candidate is any zero-argument callable, so an ORT session and a PyTorch module (see
`compress.peers`) are timed in the same loop.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

CI_LEVEL = 0.95
CI_RESAMPLES = 2000
CI_SEED = 0


@dataclass
class LatencyStats:
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    measured_s: float
    p50_ci_low_ms: float
    p50_ci_high_ms: float
    ci_level: float = CI_LEVEL
    ci_resamples: int = CI_RESAMPLES
    cold: LatencyStats | None = None  # the same figures with the caches evicted before each call

    def as_dict(self) -> dict:
        out = asdict(self)
        if out["cold"] is None:
            del out["cold"]
        return out


# The evictor touches this times this core's L2 + L3: more than the last-level cache. Caches do
# not evict in strict LRU order (adaptive insertion protects lines that are reused, as a
# model's weights are), so the measured cold p50 against the size touched was checked for a
# plateau: on a 105 MiB-L3 Xeon it is flat from 0.25x (docs/cold-cache-and-intervals.md). More
# costs time: each eviction reads the whole buffer.
EVICT_FACTOR = 1.0


def evict_size(size_bytes: int | None = None) -> tuple[dict, int]:
    """(this core's cache sizes, bytes the evictor touches: `size_bytes` or the default)."""
    from compress.measure.system import cache_sizes

    caches = cache_sizes()
    if size_bytes is None:
        size_bytes = int(EVICT_FACTOR * (caches["l2_bytes"] + caches["l3_bytes"]))
    return caches, max(size_bytes, 1 << 20)


class CacheEvictor:
    """Calling it reads one byte of every cache line of a buffer `EVICT_FACTOR` times the size
    of this core's L2 + L3 (`measure.system.cache_sizes`), so the next call of a model finds
    none of its weights or activations in the data caches.

    Only the calling core's private caches and the shared last level are evicted: with several
    intra-op threads the other cores' private L2 may keep a part.
    """

    def __init__(self, size_bytes: int | None = None):
        self.caches, self.size_bytes = evict_size(size_bytes)
        # np.ones, not np.empty: untouched pages all map to one shared zero page, and reading
        # them would evict nothing.
        self._buf = np.ones(self.size_bytes, dtype=np.uint8)
        self._lines = self._buf[::64]

    def __call__(self) -> int:
        return int(self._lines.sum(dtype=np.uint64))


def bootstrap_median_ci(
    x: np.ndarray, level: float = CI_LEVEL, resamples: int = CI_RESAMPLES, seed: int = CI_SEED
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median of `x`.

    A resample draws n of the n sorted values with replacement, i.e. n uniform indices, and its
    median is the k-th smallest of those indices (the mean of the k-th and (k+1)-th for even n).
    The k-th smallest of n uniforms on [0, 1) follows Beta(k, n + 1 - k), and the next one lies
    above it like the minimum of the n - k uniforms left; mapping through floor(n * u) gives the
    discrete index. So each resample's median is drawn from its exact distribution in O(1)
    instead of materialising n indices: same result as `np.median(x[rng.integers(0, n, n)])`,
    2000 resamples of 100k runs in a millisecond rather than seconds.
    """
    xs = np.sort(np.asarray(x, dtype=np.float64))
    n = len(xs)
    if n == 1:
        return float(xs[0]), float(xs[0])
    rng = np.random.default_rng(seed)
    k = (n + 1) // 2  # 1-based rank of the (lower) median
    u_k = rng.beta(k, n + 1 - k, size=resamples)
    lo_idx = np.minimum((u_k * n).astype(np.int64), n - 1)
    if n % 2:
        medians = xs[lo_idx]
    else:
        u_next = u_k + (1 - u_k) * rng.beta(1, n - k, size=resamples)
        hi_idx = np.minimum((u_next * n).astype(np.int64), n - 1)
        medians = (xs[lo_idx] + xs[hi_idx]) / 2
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def summarize(times_ns: list[int]) -> LatencyStats:
    t = np.asarray(times_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    low, high = bootstrap_median_ci(t)
    return LatencyStats(
        runs=len(t), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
        mean_ms=float(t.mean()), min_ms=float(t.min()), measured_s=float(t.sum() / 1e3),
        p50_ci_low_ms=low, p50_ci_high_ms=high,
    )


def measure_callables(
    candidates: dict[str, Callable[[], object]],
    warmup_runs: int = 20,
    min_runs: int = 200,
    min_time_s: float = 2.0,
    max_time_s: float = 60.0,
    chunk: int = 10,
    cold_runs: int = 0,
    evict: Callable[[], object] | None = None,
) -> dict[str, LatencyStats]:
    """Time each zero-argument callable, round-robin in chunks of `chunk` runs.

    A candidate is done once it has `min_runs` runs and `min_time_s` of measured time; all stop
    at `max_time_s` of wall time so a very slow model cannot hold the run hostage. With
    `cold_runs`, each warm round is followed by a cold round (`evict()`, then one timed call,
    per candidate) until every candidate has `cold_runs` cold calls; their figures are in
    `.cold` of each result.
    """
    names = list(candidates)
    if cold_runs and evict is None:
        evict = CacheEvictor()
    for name in names:
        for _ in range(warmup_runs):
            candidates[name]()
    times: dict[str, list[int]] = {n: [] for n in names}
    cold: dict[str, list[int]] = {n: [] for n in names}
    spent = dict.fromkeys(names, 0)
    start = time.perf_counter()
    rnd, evicted = 0, False
    while True:
        pending = [n for n in names if len(times[n]) < min_runs or spent[n] < min_time_s * 1e9]
        cold_pending = [n for n in names if len(cold[n]) < cold_runs]
        if not (pending or cold_pending) or time.perf_counter() - start > max_time_s:
            break
        # Rotate the order every round so no candidate always runs right after another.
        for name in _rotated(pending, rnd):
            run, bucket = candidates[name], times[name]
            if evicted:
                run()  # untimed: the cold round left this model's caches empty
            for _ in range(chunk):
                t0 = time.perf_counter_ns()
                run()
                dt = time.perf_counter_ns() - t0
                bucket.append(dt)
                spent[name] += dt
        for name in _rotated(cold_pending, rnd):
            run = candidates[name]
            evict()
            t0 = time.perf_counter_ns()
            run()
            cold[name].append(time.perf_counter_ns() - t0)
        evicted = bool(cold_pending)
        rnd += 1
    out = {n: summarize(times[n]) for n in names}
    for n in names:
        if cold[n]:
            out[n].cold = summarize(cold[n])
    return out


def _rotated(names: list[str], k: int) -> list[str]:
    if not names:
        return names
    k %= len(names)
    return names[k:] + names[:k]


def measure_interleaved(
    sessions: dict[str, object], feeds: dict[str, dict[str, np.ndarray]], *args, **kwargs
) -> dict[str, LatencyStats]:
    """`measure_callables` (same further arguments) for ORT sessions, each timing
    `session.run(None, feed)`."""
    # functools.partial calls session.run from C: no Python frame added inside the timed region.
    candidates = {n: functools.partial(s.run, None, feeds[n]) for n, s in sessions.items()}
    return measure_callables(candidates, *args, **kwargs)


def measure_input_sequence(
    sessions: dict[str, object],
    feeds: list[dict[str, np.ndarray]],
    warmup_feeds: int = 5,
    min_passes: int = 1,
    min_time_s: float = 2.0,
    max_time_s: float = 120.0,
) -> dict[str, LatencyStats]:
    """Latency over a distribution of inputs (sentences at their own lengths, batches padded to
    their own longest): every session runs every feed, in passes over `feeds`, interleaved
    feed by feed (the order of sessions rotating) so drift hits all alike. Passes repeat until
    `min_passes` are done and `min_time_s` of wall time has passed, or `max_time_s` has; the
    stats are over all calls, one per feed and pass."""
    names = list(sessions)
    runs = {n: [functools.partial(sessions[n].run, None, f) for f in feeds] for n in names}
    for n in names:
        for run in runs[n][:warmup_feeds]:
            run()
    times: dict[str, list[int]] = {n: [] for n in names}
    start, passes, i = time.perf_counter(), 0, 0
    while True:
        elapsed = time.perf_counter() - start
        if (passes >= min_passes and elapsed >= min_time_s) or (passes and elapsed > max_time_s):
            break
        for j in range(len(feeds)):
            k = i % len(names)
            for n in names[k:] + names[:k]:
                t0 = time.perf_counter_ns()
                runs[n][j]()
                times[n].append(time.perf_counter_ns() - t0)
            i += 1
        passes += 1
    return {n: summarize(times[n]) for n in names}
