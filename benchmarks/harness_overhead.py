"""How much does compress's latency harness add to a bare `session.run` loop?

Runs the same ONNX model through (a) a bare loop timing each `session.run` with perf_counter_ns
and (b) `compress.measure.latency.measure_interleaved`, alternating the two several times so
drift hits both alike, and reports the medians and their ratio.

    python benchmarks/harness_overhead.py [MODEL.onnx] [--batch 1] [--rounds 5]

Default model: exported/digits/teacher_onnx/model.onnx (run `make demo` first).
Writes benchmarks/results/harness_overhead-<pipeline>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from compress.measure.latency import measure_interleaved
from compress.measure.ort import make_session
from compress.measure.system import cpu_info, versions

HERE = Path(__file__).resolve().parent


def bare_loop(session, feed, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="exported/digits/teacher_onnx/model.onnx")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=400)
    args = ap.parse_args()

    session = make_session(args.model, threads=1)
    inp = session.get_inputs()[0]
    shape = [args.batch] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
    feed = {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(50):
        session.run(None, feed)

    bare, harness = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(session, feed, args.runs))
        stats = measure_interleaved({"m": session}, {"m": feed}, warmup_runs=0,
                                    min_runs=args.runs, min_time_s=0.0)
        harness.append(stats["m"].p50_ms)
    b, h = statistics.median(bare), statistics.median(harness)
    result = {
        "model": args.model, "batch": args.batch, "threads": 1, "rounds": args.rounds,
        "runs_per_round": args.runs, "bare_p50_ms": b, "harness_p50_ms": h,
        "overhead_pct": (h / b - 1) * 100, "bare_rounds_ms": bare, "harness_rounds_ms": harness,
        "cpu": cpu_info(), "versions": versions(),
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = Path(args.model)
    name = path.parts[-3] if path.name == "model.onnx" and len(path.parts) >= 3 else path.stem
    (out / f"harness_overhead-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (f"| model | batch | bare session.run p50 | compress harness p50 | overhead |\n"
          f"|---|---|---|---|---|\n| `{args.model}` | {args.batch} | {b * 1000:.1f} us | "
          f"{h * 1000:.1f} us | {result['overhead_pct']:+.1f} % |\n")
    (out / f"harness_overhead-{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
