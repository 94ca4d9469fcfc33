"""The per-runtime table of `bench` (`runtimes:`): every model in every runtime listed, with
whether it loads (or the first op it cannot run), its test accuracy there, how many test
predictions agree with Python onnxruntime's, and p50 at each batch size.

In-process runtimes (onnxruntime, OpenVINO) are timed in one `measure_callables` loop per batch
size, every (model, runtime) pair interleaved with the others; onnxruntime-web times its models
interleaved among themselves inside Node (`ortweb/run.mjs`), one call of the Node runner."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from compress.errors import StageError
from compress.measure.latency import measure_callables, summarize
from compress.measure.ort import batch_of
from compress.measure.runtimes import get_runtime
from compress.measure.runtimes.base import LoadFailure

TIMING_KEYS = ("warmup_runs", "min_runs", "min_time_s", "max_time_s")


def _record(pred: np.ndarray, y: np.ndarray, ref: np.ndarray) -> dict:
    return {"loaded": True, "accuracy_pct": float((pred == y).mean() * 100),
            "agree": int((pred == ref).sum()), "samples": int(len(y)), "latency": {}}


def compare_runtimes(paths: dict[str, Path], x_test: np.ndarray, y_test: np.ndarray,
                     ort_pred: dict[str, np.ndarray], runtimes: list[str],
                     batch_sizes: list[int], threads: int, timing: dict) -> dict:
    """{"runtimes": {name: {version, status, ...}}, "models": {model: {runtime: record}}}.

    A runtime that is not installed is skipped with one line on stderr (and in the table); a
    model a runtime cannot load is a record with `loaded: false` and why, not an error."""
    table: dict = {"runtimes": {}, "models": {m: {} for m in paths}, "threads": threads}
    inproc: dict[tuple[str, str], object] = {}
    for name in runtimes:
        rt = get_runtime(name)
        why = rt.missing()
        if why:
            print(f"warning: runtime {name} skipped: {why}; {rt.install}", file=sys.stderr)
            table["runtimes"][name] = {"status": "not installed", "why": why,
                                       "install": rt.install}
            continue
        table["runtimes"][name] = {"status": "measured", "version": rt.version(),
                                   "threads": threads if rt.in_process else 1}
        if not rt.in_process:
            try:
                _external(rt, table, paths, x_test, y_test, ort_pred, batch_sizes, timing)
            except StageError as e:  # npm unreachable, Node too old: this runtime only
                print(f"warning: runtime {name} skipped: {e}", file=sys.stderr)
                table["runtimes"][name] = {"status": "failed", "why": str(e),
                                           "install": rt.install}
            continue
        for model, path in paths.items():
            loaded = rt.load(path, threads)
            if isinstance(loaded, LoadFailure):
                table["models"][model][name] = loaded.as_dict()
                continue
            try:
                pred = loaded.predict(x_test).argmax(1)
            except Exception as e:  # a runtime may load a graph and fail when it runs
                from compress.measure.runtimes.base import failure

                table["models"][model][name] = failure(e).as_dict()
                continue
            table["models"][model][name] = _record(pred, y_test, ort_pred[model])
            inproc[(model, name)] = loaded
    for b in batch_sizes:
        x = batch_of(x_test, b)
        calls = {f"{m}@{r}": lo.bind(x) for (m, r), lo in inproc.items()
                 if lo.fixed_batch in (None, b)}
        if not calls:
            continue
        stats = measure_callables(calls, **{k: timing[k] for k in TIMING_KEYS})
        for key, st in stats.items():
            m, r = key.split("@")
            table["models"][m][r]["latency"][f"b{b}_t{threads}"] = {
                "batch_size": b, "threads": threads, **st.as_dict()}
    return table


def _external(rt, table, paths, x_test, y_test, ort_pred, batch_sizes, timing) -> None:
    results = rt.measure_external(paths, x_test, batch_sizes, timing)
    for model, res in results.items():
        if isinstance(res, LoadFailure):
            table["models"][model][rt.name] = res.as_dict()
            continue
        rec = _record(res["logits"].argmax(1), y_test, ort_pred[model])
        for b, times in res["times_ms"].items():
            if times:
                st = summarize([int(t * 1e6) for t in times])
                rec["latency"][f"b{b}_t1"] = {"batch_size": b, "threads": 1, **st.as_dict()}
        table["models"][model][rt.name] = rec
