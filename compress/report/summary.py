"""The numbers a report shows, derived from bench.json and the manifest in one place, so that
the Markdown tables, the plots and report.json cannot disagree. Nothing here measures."""

from __future__ import annotations


def headline_settings(bench: dict) -> tuple[str, str]:
    """(small-batch setting, large-batch setting) for the summary, e.g. ('b1_t1', 'b64_t1'):
    one thread when measured (the fairest per-core comparison), else the first thread count."""
    base = bench["models"][bench["baseline"]]["latency"]
    parsed = [(int(s.split("_")[0][1:]), int(s.split("_")[1][1:]), s) for s in base]
    threads = [t for _, t, _ in parsed]
    t = 1 if 1 in threads else threads[0]
    batches = sorted(b for b, tt, _ in parsed if tt == t)
    return f"b{batches[0]}_t{t}", f"b{batches[-1]}_t{t}"


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names not dominated in (latency: lower is better, accuracy: higher is better), fastest
    first. A point is dominated when another is at least as good in both and better in one."""
    front = []
    for name, (lat, acc) in points.items():
        dominated = any(
            (lo <= lat and ao >= acc) and (lo < lat or ao > acc)
            for other, (lo, ao) in points.items() if other != name
        )
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: points[n][0])


def _cold_p50(latency: dict) -> float | None:
    """p50 with the caches evicted before each call; None for a bench without cold runs."""
    return (latency.get("cold") or {}).get("p50_ms")


def summary_rows(bench: dict) -> list[dict]:
    """One dict per bench model: the summary table's cells as numbers, ratios to the baseline."""
    from compress.measure.accuracy import find_paired

    small, large = headline_settings(bench)
    models = bench["models"]
    base = models[bench["baseline"]]
    base_cold = _cold_p50(base["latency"][small])
    points = {n: (m["latency"][small]["p50_ms"], m["accuracy_pct"]) for n, m in models.items()}
    front = set(pareto_front(points))
    rows = []
    for name, m in models.items():
        lat_s, lat_l = m["latency"][small], m["latency"].get(large, m["latency"][small])
        energy = next(iter(m.get("energy", {}).values()), None)
        memory = m.get("memory") or {}
        cold = lat_s.get("cold") or {}
        paired = (find_paired(bench.get("accuracy_tests", []), bench["baseline"], name)
                  if name != bench["baseline"] else None)
        rows.append({
            "model": name,
            "label": m.get("label", name),
            "role": m.get("role", "model"),
            "peer": m.get("peer"),
            "runtime": m.get("runtime", "onnxruntime"),
            "accuracy_pct": m["accuracy_pct"],
            "accuracy_ci_pct": m.get("accuracy_ci_pct"),  # Wilson, 95 %; None in older benches
            "size_bytes": m["size_bytes"],
            "params": m["params"],
            "setting_small": small,
            "setting_large": large,
            "p50_small_ms": lat_s["p50_ms"],
            "p50_small_ci_ms": [lat_s.get("p50_ci_low_ms"), lat_s.get("p50_ci_high_ms")],
            "p99_small_ms": lat_s["p99_ms"],
            "cold_p50_small_ms": cold.get("p50_ms"),
            "cold_p50_small_ci_ms": [cold.get("p50_ci_low_ms"), cold.get("p50_ci_high_ms")],
            "p50_large_ms": lat_l["p50_ms"],
            "memory_peak_bytes": memory.get("peak_delta_bytes"),
            "runtime_import_bytes": memory.get("runtime_import_bytes"),
            "energy_mj_per_inference": energy["mj_per_inference"] if energy else None,
            "energy_label": energy["label"] if energy else None,
            "energy_method": energy["method"] if energy else None,
            "energy_uncertainty_pct": energy.get("uncertainty_pct") if energy else None,
            "co2e_g_per_million": energy.get("co2e_g_per_million") if energy else None,
            "size_reduction_x": base["size_bytes"] / m["size_bytes"],
            "speedup_small_x": base["latency"][small]["p50_ms"] / lat_s["p50_ms"],
            "speedup_large_x": base["latency"].get(large, base["latency"][small])["p50_ms"]
            / lat_l["p50_ms"],
            "cold_speedup_small_x": base_cold / cold["p50_ms"]
            if base_cold and cold.get("p50_ms") else None,
            "accuracy_drop_pts": base["accuracy_pct"] - m["accuracy_pct"],
            # McNemar's exact test against the baseline on the same samples; None for itself
            "accuracy_drop_test": paired,
            "pareto": name in front,
        })
    return rows


def stage_energy_rows(manifest: dict) -> list[dict]:
    """Energy of every stage as recorded when it ran (cached stages keep their first figure)."""
    rows = []
    for sid, st in manifest["stages"].items():
        e = st.get("energy")
        if e:
            rows.append({"stage_id": sid, "stage": st["stage"], "joules": e["joules"],
                         "wall_time_s": st.get("wall_time_s"), "method": e["method"],
                         "label": e["label"], "why": e["why"],
                         "uncertainty_pct": e.get("uncertainty_pct"),
                         "status": st.get("status")})
    return rows


def stage_size_rows(manifest: dict) -> list[dict]:
    """Size of each stage's model artifact (checkpoint or ONNX), in pipeline order."""
    rows = []
    for sid, st in manifest["stages"].items():
        primary = st.get("primary", "")
        if primary.endswith((".pt", ".onnx")):
            size = st.get("outputs", {}).get(primary, {}).get("size_bytes")
            if size is not None:
                kind = "ONNX" if primary.endswith(".onnx") else "checkpoint"
                rows.append({"name": sid, "stage": st["stage"], "kind": kind, "size_bytes": size})
    return rows


def bench_order(manifest: dict, bench_ids: list[str]) -> list[str]:
    """Bench ids headline first: the bench the comparison gates read (recorded by the run),
    else the last one, as the gates choose; then the others in pipeline order."""
    if not bench_ids:
        return []
    head = manifest.get("gate_bench")
    head = head if head in bench_ids else bench_ids[-1]
    return [head] + [b for b in bench_ids if b != head]
