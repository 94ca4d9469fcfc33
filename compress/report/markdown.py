"""Markdown for people: the summary table, the detailed bench table and the pipeline report.
Numbers come from JSON written by the stages (through `report.summary`); nothing here measures
or estimates anything."""

from __future__ import annotations

from pathlib import Path

from compress.report.summary import (
    headline_settings,
    stage_energy_rows,
    summary_rows,
)


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms * 1000:.0f} us" if ms < 1 else f"{ms:.2f} ms"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return ""
    if hi < 1:
        return f" [{lo * 1000:.0f}-{hi * 1000:.0f}]"
    return f" [{lo:.2f}-{hi:.2f}]"


def fmt_energy(mj: float | None, method: str | None = None) -> str:
    if mj is None:
        return "-"
    text = f"{mj * 1000:.3g} uJ" if mj < 0.1 else f"{mj:.3g} mJ"
    return text + (" (est.)" if method and "estimate" in method else "")


def fmt_joules(j: float) -> str:
    if j >= 3600:
        return f"{j / 3600:.3g} Wh"
    return f"{j / 1000:.3g} kJ" if j >= 1000 else f"{j:.3g} J"


def _setting_name(s: str) -> str:
    b, t = s.split("_")
    return f"batch {b[1:]}, {t[1:] if t != 't0' else 'all'} thr"


def _name_cell(row: dict) -> str:
    extra = f" ({row['label']})" if row["label"] != row["model"] else ""
    if row.get("peer") and row["role"] == "model":
        extra = f" (= {row['peer']} peer)"
    return f"`{row['model']}`{extra}"


def summary_table(bench: dict) -> str:
    """model | accuracy | size | params | p50 small batch (CI) | p50 large | memory | energy |
    ratios to the baseline; Pareto-optimal models marked with *."""
    rows = summary_rows(bench)
    small, large = headline_settings(bench)
    head = ["model", "test acc", "size", "params", f"p50 {_setting_name(small)} [95 % CI]",
            f"p50 {_setting_name(large)}", "peak memory", "energy / inference",
            "size reduction", "speed-up (small / large batch)", "acc. drop"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        star = " *" if r["pareto"] else ""
        lines.append("| " + " | ".join([
            _name_cell(r) + star, f"{r['accuracy_pct']:.2f} %", fmt_bytes(r["size_bytes"]),
            f"{r['params']:,}",
            fmt_ms(r["p50_small_ms"]) + fmt_ci(*r["p50_small_ci_ms"]),
            fmt_ms(r["p50_large_ms"]), fmt_bytes(r["memory_peak_bytes"]),
            fmt_energy(r["energy_mj_per_inference"], r["energy_method"]),
            f"{r['size_reduction_x']:.1f}x",
            f"{r['speedup_small_x']:.2f}x / {r['speedup_large_x']:.2f}x",
            f"{r['accuracy_drop_pts']:+.2f} pts",
        ]) + " |")
    return "\n".join(lines)


def summary_notes(bench: dict) -> list[str]:
    m = bench.get("method", {})
    cpu = bench.get("cpu", {})
    notes = [
        f"Ratios against `{bench['baseline']}` (size reduction and speed-up: baseline / "
        "model; accuracy drop: baseline - model, in points), all measured in the same run; "
        f"accuracy on {bench.get('test_samples', '?')} held-out test samples. "
        "`*` = on the Pareto front of accuracy vs p50 latency (small batch).",
    ]
    if "energy" in m:
        notes.append(f"Energy: {m['energy']}.")
    if "memory" in m:
        notes.append(f"Memory: {m['memory']}.")
    if "latency_ci" in m:
        notes.append(f"Latency CI: {m['latency_ci']}.")
    notes.append(
        f"CPU: {cpu.get('cpu_model', '?')} ({cpu.get('logical_cores', '?')} logical cores; "
        f"ISA: {', '.join(cpu.get('isa', [])) or 'none detected'}); onnxruntime "
        f"{bench.get('versions', {}).get('onnxruntime', '?')}, torch "
        f"{bench.get('versions', {}).get('torch', '?')}.")
    return notes


def bench_table(result: dict) -> str:
    """Every model and setting: accuracy, size, params, p50 [CI] / p90 / p99 per setting,
    memory, energy, ratios to the baseline; then how it was measured."""
    models = result["models"]
    base = models[result["baseline"]]
    settings = list(base["latency"])
    head = ["model", "test acc", "size", "params"]
    head += [f"p50 [CI] / p90 / p99, {_setting_name(s)}" for s in settings]
    head += ["peak memory (+ runtime)", "energy / inference", "size ratio"]
    head += [f"speed-up {s}" for s in settings] + ["acc. drop"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in models.items():
        label = m.get("label", name)
        cells = [f"`{name}`" + (f" ({label})" if label != name else ""),
                 f"{m['accuracy_pct']:.2f} %", fmt_bytes(m["size_bytes"]), f"{m['params']:,}"]
        for s in settings:
            lat = m["latency"][s]
            cells.append(fmt_ms(lat["p50_ms"]) + fmt_ci(lat.get("p50_ci_low_ms"),
                                                        lat.get("p50_ci_high_ms"))
                         + " / " + fmt_ms(lat["p90_ms"]) + " / " + fmt_ms(lat["p99_ms"]))
        mem = m.get("memory")
        cells.append(f"{fmt_bytes(mem['peak_delta_bytes'])} (+ "
                     f"{fmt_bytes(mem['runtime_import_bytes'])})" if mem else "-")
        energy = m.get("energy") or {}
        cells.append(" / ".join(f"{fmt_energy(e['mj_per_inference'])} (b{e['samples_per_call']})"
                                for e in energy.values()) or "-")
        cells.append(f"{base['size_bytes'] / m['size_bytes']:.1f}x")
        for s in settings:
            cells.append(f"{base['latency'][s]['p50_ms'] / m['latency'][s]['p50_ms']:.2f}x")
        cells.append(f"{base['accuracy_pct'] - m['accuracy_pct']:+.2f} pts")
        rows.append("| " + " | ".join(cells) + " |")
    method = result.get("method", {})
    notes = ["", f"Latency: {method.get('latency', '?')}."] + [""] + summary_notes(result)
    return "\n".join(rows + notes)


def pipeline_report(manifest: dict, root: Path, plots: list[str] | None = None) -> str:
    """The whole run: summary first, then stages (with energy), bench details, gates."""
    from compress.artifacts import read_json

    benches = {sid: read_json(root / sid / "bench.json")
               for sid, st in manifest["stages"].items() if st["stage"] == "bench"}
    lines = [f"# Report: pipeline `{manifest['pipeline']}`", ""]
    for sid, bench in benches.items():
        lines += [f"## Summary: bench `{sid}`", "", summary_table(bench), ""]
        lines += [f"- {n}" for n in summary_notes(bench)] + [""]
    for p in plots or []:
        lines += [f"![{Path(p).stem.replace('_', ' ')}]({p})", ""]

    lines += ["## Stages", "", "| stage | kind | status | wall time | energy | key figures |",
              "|---|---|---|---|---|---|"]
    for sid, st in manifest["stages"].items():
        m = st.get("metrics", {})
        figures = []
        for key in ("test_accuracy_pct", "baseline_test_accuracy_pct",
                    "without_teacher_test_accuracy_pct", "ort_test_accuracy_pct", "params",
                    "size_bytes",
                    "epochs_run", "parity_max_abs_diff", "device", "setting", "int8_ops",
                    "float_ops", "note"):
            if m.get(key) is not None:
                v = m[key]
                figures.append(f"{key} {v:.4g}" if isinstance(v, float) else f"{key} {v}")
        if st["stage"] == "bench":
            figures.append(f"{len(benches[sid]['models'])} model(s)")
        e = st.get("energy")
        energy = (f"{fmt_joules(e['joules'])}" + (" (est.)" if "estimate" in e["method"] else "")
                  if e else "-")
        lines.append(f"| `{sid}` | {st['stage']} | {st['status']} | {st['wall_time_s']:.1f} s "
                     f"| {energy} | {', '.join(figures)} |")
    warnings = [f"- `{sid}`: {st['metrics']['baseline_warning']}"
                for sid, st in manifest["stages"].items()
                if (st.get("metrics") or {}).get("baseline_warning")]
    if warnings:
        lines += ["", "**Warnings** (a model below the plain baseline):", "", *warnings]
    if manifest.get("ship"):
        lines += ["", f"Shipped model: `{manifest['ship']}`, {manifest.get('ship_why', '')}."]
    energy_rows = stage_energy_rows(manifest)
    if energy_rows:
        total = sum(r["joules"] for r in energy_rows)
        grid = manifest.get("energy", {}).get("grid_gco2_per_kwh")
        co2 = f", {total / 3.6e6 * grid:.3g} gCO2e at {grid:g} gCO2/kWh" if grid else ""
        methods = sorted({r["label"] for r in energy_rows})
        lines += ["", f"Stage energy, total {fmt_joules(total)}{co2} (each figure as measured "
                  f"when its stage ran; cached stages keep it): {'; '.join(methods)}. "
                  f"Why: {energy_rows[0]['why']}."]
    for sid, bench in benches.items():
        lines += ["", f"## Benchmark `{sid}`", "", bench_table(bench)]
    gates = manifest.get("gates")
    if gates:
        lines += ["", "## Gates", "", "| gate | wanted | measured | result |", "|---|---|---|---|"]
        for g in gates:
            lines.append(f"| {g['gate']} | {g['wanted']} | {g['measured']} | "
                         f"{'pass' if g['passed'] else '**FAIL**'} |")
    v = manifest.get("versions", {})
    data = dict(manifest.get("data", {}))
    source = data.pop("source", "?")
    spec = ", ".join(f"{k} {v}" for k, v in data.items())
    lines += ["", f"Data: {source} ({spec}). Versions: "
              + ", ".join(f"{k} {val}" for k, val in v.items()) + "."]
    if manifest.get("seeds"):
        lines += ["", "Seeds: " + ", ".join(f"{k} {s}" for k, s in manifest["seeds"].items()) + "."]
    return "\n".join(lines) + "\n"
