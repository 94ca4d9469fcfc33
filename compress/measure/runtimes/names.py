"""Names of the runtime table's gateable metrics and its method line: read when a pipeline
loads (no runtime is imported)."""

from __future__ import annotations


def flatten_runtimes(table: dict | None) -> dict:
    """Gateable metrics: `<model>.<runtime>.loads` (1/0), `.accuracy_pct`, `.agree`,
    `.<setting>.p50_ms`; onnxruntime's own figures stay under `<model>.<...>` as before."""
    out: dict = {}
    for model, per in (table or {}).get("models", {}).items():
        for runtime, rec in per.items():
            if runtime == "onnxruntime":
                continue
            key = f"{model}.{runtime}"
            out[f"{key}.loads"] = int(rec["loaded"])
            if not rec["loaded"]:
                continue
            out[f"{key}.accuracy_pct"] = rec["accuracy_pct"]
            out[f"{key}.agree"] = rec["agree"]
            for setting, lat in rec["latency"].items():
                out[f"{key}.{setting}.p50_ms"] = lat["p50_ms"]
    return out


def runtime_metric_names(models: list[str], runtimes: list[str], batch_sizes: list[int],
                         threads: int) -> list[str]:
    names = []
    for m in models:
        for r in runtimes:
            if r == "onnxruntime":
                continue
            t = 1 if r == "onnxruntime-web" else threads
            names += [f"{m}.{r}.{k}" for k in ("loads", "accuracy_pct", "agree")]
            names += [f"{m}.{r}.b{b}_t{t}.p50_ms" for b in batch_sizes]
    return names


def runtime_method(runtimes: list[str], timing: dict) -> str:
    return (f"runtimes {', '.join(runtimes)}: the test split predicted in each (argmax), "
            "agreement = test samples whose predicted class equals Python onnxruntime's; p50 of "
            f"{timing['min_runs']}+ runs and >= {timing['min_time_s']} s per model after "
            f"{timing['warmup_runs']} warm-up runs: onnxruntime and OpenVINO (CPU plugin, "
            "PERFORMANCE_HINT LATENCY) interleaved in one loop, wall time per call; "
            "onnxruntime-web 1 thread, WASM SIMD, in Node.js, timed inside JS with "
            "performance.now() around session.run, its models interleaved among themselves")
