"""Latency in ONNX Runtime: warm-up, then candidates interleaved in small chunks (so drift and
noisy neighbours hit all alike) until each has both enough runs and enough measured time."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class LatencyStats:
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    measured_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(times_ns: list[int]) -> LatencyStats:
    t = np.asarray(times_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    return LatencyStats(
        runs=len(t), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
        mean_ms=float(t.mean()), min_ms=float(t.min()), measured_s=float(t.sum() / 1e3),
    )


def measure_interleaved(
    sessions: dict[str, object],
    feeds: dict[str, dict[str, np.ndarray]],
    warmup_runs: int = 20,
    min_runs: int = 200,
    min_time_s: float = 2.0,
    max_time_s: float = 60.0,
    chunk: int = 10,
) -> dict[str, LatencyStats]:
    """Time `session.run` for each candidate, round-robin in chunks of `chunk` runs.

    A candidate is done once it has `min_runs` runs and `min_time_s` of measured time; all stop
    at `max_time_s` of wall time so a very slow model cannot hold the run hostage.
    """
    names = list(sessions)
    for name in names:
        for _ in range(warmup_runs):
            sessions[name].run(None, feeds[name])
    times: dict[str, list[int]] = {n: [] for n in names}
    spent = dict.fromkeys(names, 0)
    start = time.perf_counter()
    rnd = 0
    while True:
        pending = [n for n in names if len(times[n]) < min_runs or spent[n] < min_time_s * 1e9]
        if not pending or time.perf_counter() - start > max_time_s:
            break
        # Rotate the order every round so no candidate always runs right after another.
        order = pending[rnd % len(pending):] + pending[: rnd % len(pending)]
        for name in order:
            run, feed, bucket = sessions[name].run, feeds[name], times[name]
            for _ in range(chunk):
                t0 = time.perf_counter_ns()
                run(None, feed)
                dt = time.perf_counter_ns() - t0
                bucket.append(dt)
                spent[name] += dt
        rnd += 1
    return {n: summarize(times[n]) for n in names}
