"""Gates: conditions on measured metrics that make a run fail (exit 1) when a compression
regresses. Comparison gates read one bench stage; metric gates read any stage's metrics."""

from __future__ import annotations

from pathlib import Path

from compress.errors import ConfigError


def gate_bench(stages: list, gates):
    """The bench stage the comparison gates read: the one named, else the last; None if none."""
    benches = [s for s in stages if s.stage == "bench"]
    if gates.bench:
        return next((b for b in benches if b.id == gates.bench), None)
    return benches[-1] if benches else None


def gated_bench_id(cfg) -> str | None:
    """Id of the bench the comparison gates read (the report's headline); None without gates
    or benches."""
    bench = gate_bench(cfg.stages, cfg.gates) if cfg.gates is not None else None
    return bench.id if bench is not None else None


def gate_explain(stages: list, gates):
    """The explain stage the fidelity gate reads: the one named, else the last; None if none."""
    explains = [s for s in stages if s.stage == "explain"]
    if gates.explain:
        return next((e for e in explains if e.id == gates.explain), None)
    return explains[-1] if explains else None


def _fidelity_gate(cfg, manifest: dict, add) -> None:
    g = cfg.gates
    ex = gate_explain(cfg.stages, g)
    cand = g.candidate if g.candidate in ex.models[1:] else ex.models[-1]
    value = _metric(manifest["stages"][ex.id]["metrics"], ex.id, f"{cand}.spearman")
    add(f"attribution fidelity {cand} vs {ex.models[0]} (Spearman)", ">=",
        g.min_attribution_fidelity, value, models=(cand,))


def _bench_models(cfg, manifest: dict) -> tuple[str, str, str, dict]:
    g = cfg.gates
    bench = gate_bench(cfg.stages, g)
    baseline = g.baseline or bench.models[0]
    candidate = g.candidate or bench.models[-1]
    return bench.id, baseline, candidate, manifest["stages"][bench.id]["metrics"]


def _metric(metrics: dict, stage_id: str, name: str):
    if name not in metrics:
        known = ", ".join(sorted(metrics)[:40])
        raise ConfigError(f"gates: stage '{stage_id}' has no metric '{name}' (it has: {known})")
    return metrics[name]


def _p50_key(cache: str) -> tuple[str, str]:
    """(metric name of the p50 a gate reads, words added to the gate's name)."""
    return ("cold_p50_ms", ", cold cache") if cache == "cold" else ("p50_ms", "")


def _drop_significance(bench_json: Path, base: str, cand: str) -> str | None:
    """Whether the accuracy drop is more than noise: McNemar's exact test from the bench (the
    gate itself still reads the drop alone). None for a bench that recorded no tests."""
    from compress.artifacts import read_json
    from compress.errors import CompressError
    from compress.measure.accuracy import describe_paired, find_paired

    try:
        tests = read_json(bench_json).get("accuracy_tests") or []
    except CompressError:
        return None
    test = find_paired(tests, base, cand)
    return describe_paired(test) if test else None


def evaluate_gates(cfg, manifest: dict, root: Path, candidate: str | None = None) -> list[dict]:
    """Every gate as {gate, wanted, measured, passed, models}; raises ConfigError for unknown
    metrics. `candidate` replaces the gates' own (to ask whether another model would pass)."""
    g = cfg.gates
    if candidate is not None:
        g = g.model_copy(update={"candidate": candidate})
        cfg = cfg.model_copy(update={"gates": g})
    results: list[dict] = []

    def add(gate: str, op: str, wanted: float, measured: float, unit: str = "",
            note: str | None = None, models: tuple[str, ...] = ()) -> None:
        passed = measured >= wanted if op == ">=" else measured <= wanted
        results.append({
            "gate": gate, "wanted": f"{op} {wanted:g}{unit}",
            "measured": f"{measured:.4g}{unit}", "measured_value": measured, "passed": passed,
            **({"note": note} if note else {}),
            "models": list(models),  # the stages the gate judges (to choose the model to ship)
        })

    compares = [g.min_accuracy_pct, g.max_test_accuracy_drop_pts, g.min_latency_speedup,
                g.min_size_reduction, g.max_latency_p50_ms]
    if any(v is not None for v in compares):
        bench_id, base, cand, m = _bench_models(cfg, manifest)
        setting = f"b{g.batch_size}_t{g.threads}"
        p50, cache = _p50_key(g.cache)

        def get(model: str, name: str):
            return _metric(m, bench_id, f"{model}.{name}")

        if g.min_accuracy_pct is not None:
            add(f"{cand} accuracy", ">=", g.min_accuracy_pct, get(cand, "accuracy_pct"), " %",
                models=(cand,))
        if g.max_test_accuracy_drop_pts is not None:
            drop = get(base, "accuracy_pct") - get(cand, "accuracy_pct")
            add(f"accuracy drop {base} -> {cand}", "<=", g.max_test_accuracy_drop_pts, drop,
                " pts", models=(cand,),
                note=_drop_significance(root / bench_id / "bench.json", base, cand))
        if g.min_latency_speedup is not None:
            speed = get(base, f"{setting}.{p50}") / get(cand, f"{setting}.{p50}")
            add(f"p50 speed-up {cand} vs {base} ({setting}{cache})", ">=", g.min_latency_speedup,
                speed, "x", models=(cand,))
        if g.min_size_reduction is not None:
            ratio = get(base, "size_bytes") / get(cand, "size_bytes")
            add(f"size reduction {cand} vs {base}", ">=", g.min_size_reduction, ratio, "x",
                models=(cand,))
        if g.max_latency_p50_ms is not None:
            add(f"{cand} p50 latency ({setting}{cache})", "<=", g.max_latency_p50_ms,
                get(cand, f"{setting}.{p50}"), " ms", models=(cand,))
    if g.speedups:
        bench_id, _, _, m = _bench_models(cfg, manifest)
        for sg in g.speedups:
            setting = f"b{sg.batch_size}_t{sg.threads}"
            p50, cache = _p50_key(sg.cache)
            if sg.runtime != "onnxruntime":  # the bench's runtime table: <model>.<runtime>.*
                threads = 1 if sg.runtime == "onnxruntime-web" else sg.threads
                setting, cache = f"{sg.runtime}.b{sg.batch_size}_t{threads}", f", {sg.runtime}"
            fast = _metric(m, bench_id, f"{sg.model}.{setting}.{p50}")
            slow = _metric(m, bench_id, f"{sg.than}.{setting}.{p50}")
            add(f"p50 speed-up {sg.model} vs {sg.than} ({setting}{cache})", ">=", sg.min,
                slow / fast, "x", models=(sg.model,))
    if g.min_attribution_fidelity is not None:
        _fidelity_gate(cfg, manifest, add)
    for mg in g.metrics:
        sid, name = mg.read_as().split(".", 1)
        value = _metric(manifest["stages"][sid]["metrics"], sid, name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"gates: metric '{mg.metric}' is not a number ({value!r})")
        if mg.min is not None:
            add(mg.read_as(), ">=", mg.min, float(value), models=(sid,))
        if mg.max is not None:
            add(mg.read_as(), "<=", mg.max, float(value), models=(sid,))
    return results
