"""How much memory must be touched before a call for its latency to be "cold": the cold p50 of
each model against the bytes the evictor reads, as multiples of this core's L2 + L3.

The bench's `CacheEvictor` touches `EVICT_FACTOR` x (L2 + L3); the cold figure is only
trustworthy where it has reached a plateau before that size. Models are timed side by side
(`measure_callables`, warm chunks and cold calls interleaved), batch 1, 1 thread.

    python benchmarks/cold_cache.py exported/digits/teacher_onnx/model.onnx \
        exported/digits/student_int8/model.onnx [--factors 0 0.25 0.5 1 2] [--cold-runs 25]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

from compress.artifacts import write_json, write_text
from compress.measure.latency import EVICT_FACTOR, CacheEvictor, measure_callables
from compress.measure.ort import make_session
from compress.measure.system import cache_sizes, cpu_info

RESULTS = Path(__file__).parent / "results"


def _call(path: Path):
    session = make_session(path, threads=1)
    inp = session.get_inputs()[0]
    shape = [1] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    return functools.partial(session.run, None, {inp.name: x})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="ONNX models (names: parent folder)")
    ap.add_argument("--factors", nargs="+", type=float, default=[0, 0.25, 0.5, 1, 1.5, 2, 3])
    ap.add_argument("--cold-runs", type=int, default=25)
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.models if not p.is_file()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    calls = {p.parent.name if p.stem == "model" else p.stem: _call(p) for p in args.models}
    caches = cache_sizes()
    cache_bytes = caches["l2_bytes"] + caches["l3_bytes"]
    rows = []
    for f in args.factors:
        evict = CacheEvictor(int(f * cache_bytes)) if f > 0 else (lambda: None)
        stats = measure_callables(calls, 10, 50, 0.0, 120.0, cold_runs=args.cold_runs,
                                  evict=evict)
        rows.append({"factor": f, "bytes": int(f * cache_bytes) if f > 0 else 0, "models": {
            n: {"warm_p50_ms": s.p50_ms, "cold_p50_ms": s.cold.p50_ms} for n, s in stats.items()}})
        print(json.dumps(rows[-1]), flush=True)
    names = list(calls)
    lines = [f"# Cold p50 vs bytes touched before each call ({cpu_info()['cpu_model']})", "",
             f"L2 {caches['l2_bytes'] >> 20} MiB + L3 {caches['l3_bytes'] >> 20} MiB "
             f"(from {caches['source']}); the bench touches {EVICT_FACTOR:g}x; batch 1, 1 "
             f"thread, {args.cold_runs} cold calls per model and size, warm chunks interleaved.",
             "", "| touched (x L2 + L3) | " + " | ".join(f"`{n}` warm / cold p50" for n in names)
             + " |", "|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['factor']:g}x | " + " | ".join(
            f"{r['models'][n]['warm_p50_ms'] * 1e3:.0f} / {r['models'][n]['cold_p50_ms'] * 1e3:.0f}"
            " us" for n in names) + " |")
    write_json(RESULTS / "cold_cache.json", {"caches": caches, "cpu": cpu_info(), "rows": rows})
    write_text(RESULTS / "cold_cache.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
