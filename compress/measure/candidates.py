"""Accuracy and latency of quantization candidates against their fp32 model, in ONNX Runtime:
what the quantize stage decides with (accuracy on val, reported on test; latency interleaved
with fp32 so drift hits all alike)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.measure.latency import measure_interleaved
from compress.measure.ort import batch_of


class Evaluator:
    """Accuracy (val and test) and latency against fp32, for any model file."""

    def __init__(self, data, fp32_path: Path, threads: int):
        self.data, self.threads = data, threads
        self.fp32 = ort_measure.make_session(fp32_path, threads)
        self.input = self.fp32.get_inputs()[0].name
        self.fp32_val = self.accuracy(self.fp32, data.x_val, data.y_val)
        self.fp32_test = self.accuracy(self.fp32, data.x_test, data.y_test)

    @staticmethod
    def accuracy(session, x, y) -> float:
        return ort_measure.accuracy_pct(ort_measure.predict(session, x), y)

    def evaluate(self, path: Path) -> dict:
        s = ort_measure.make_session(path, self.threads)
        val = self.accuracy(s, self.data.x_val, self.data.y_val)
        test = self.accuracy(s, self.data.x_test, self.data.y_test)
        return {"val_accuracy_pct": val, "test_accuracy_pct": test,
                "val_drop_pts": round(self.fp32_val - val, 4),
                "test_drop_pts": round(self.fp32_test - test, 4)}

    def speedups(self, paths: dict[str, Path], batch_sizes: list[int], time_s: float) -> dict:
        """{name: {"b1": {p50_ms, fp32_p50_ms, speedup}, ...}}: every model interleaved with
        fp32 in one loop per batch size, so drift hits all alike."""
        sessions = {"fp32": self.fp32}
        for n, p in paths.items():
            sessions[n] = ort_measure.make_session(p, self.threads)
        out: dict[str, dict] = {n: {} for n in paths}
        for b in batch_sizes:
            x = batch_of(self.data.x_test, b)
            feeds = {n: {self.input: x} for n in sessions}
            stats = measure_interleaved(sessions, feeds, warmup_runs=10, min_runs=50,
                                        min_time_s=time_s, max_time_s=20 * time_s)
            for n in paths:
                out[n][f"b{b}"] = {"p50_ms": stats[n].p50_ms, "fp32_p50_ms": stats["fp32"].p50_ms,
                                   "speedup": round(stats["fp32"].p50_ms / stats[n].p50_ms, 4)}
        return out


def speedup_score(lat: dict) -> float:
    """Geometric mean of the speed-ups over the batch sizes measured."""
    return math.exp(sum(math.log(v["speedup"]) for v in lat.values()) / len(lat))


def check_speed(chosen: dict, when_slower: str, stage_id: str) -> bool:
    """Whether the chosen model is faster than fp32 at every batch size measured; a model
    slower at every one fails the stage where `when_slower` is fail."""
    lat = chosen.get("latency") or {}
    faster = bool(lat) and all(v["speedup"] > 1 for v in lat.values())
    slower = bool(lat) and all(v["speedup"] < 1 for v in lat.values())
    if slower and when_slower == "fail":
        raise StageError(
            f"stage '{stage_id}': the int8 model ({chosen['setting']}) is slower than fp32 at "
            f"every batch size measured ({_speedups_text(lat)}) and field 'when_slower' is "
            "fail; ship the fp32 model, or set when_slower: keep")
    return faster


def int8_warning(cfg, stage_id: str, chosen: dict, faster: bool, size_bytes: int,
                 fp32_size_bytes: int) -> str | None:
    """What the int8 model is worse at than its fp32 input, printed and returned: not faster at
    every batch size (cpu target), larger on disk (a small model's scales, zero points and Q/DQ
    nodes can outweigh its 4x smaller weights); None when neither."""
    worse = []
    if not faster and cfg.target == "cpu":
        worse.append(f"not faster than fp32 at every batch size on this CPU "
                     f"({_speedups_text(chosen.get('latency') or {})})")
    if size_bytes > fp32_size_bytes:
        worse.append(f"larger than fp32 ({size_bytes:,} vs {fp32_size_bytes:,} bytes: its "
                     "quantization parameters and Q/DQ nodes outweigh the smaller weights)")
    if not worse:
        return None
    warning = (f"the int8 model ({chosen['setting']}) is {' and '.join(worse)}: int8 does not "
               "pay off for this model here; keep fp32 or make the model larger per op")
    print(f"warning: {stage_id}: {warning}", file=sys.stderr)
    return warning


def _speedups_text(lat: dict) -> str:
    return ", ".join(f"{k}: {v['speedup']:.2f}x" for k, v in lat.items()) or "not measured"
