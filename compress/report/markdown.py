"""Markdown for people: the summary table, the detailed bench table and the pipeline report.
Numbers come from JSON written by the stages (through `report.summary`); nothing here measures
or estimates anything."""

from __future__ import annotations

from pathlib import Path

from compress.report.summary import (
    bench_order,
    headline_settings,
    stage_energy_rows,
    summary_rows,
)
from compress.report.units import (  # noqa: F401  (re-exported: report.ci formats with them)
    fmt_accuracy,
    fmt_bytes,
    fmt_ci,
    fmt_drop,
    fmt_energy,
    fmt_joules,
    fmt_ms,
)


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
    cold = any(r["cold_p50_small_ms"] is not None for r in rows)
    head = ["model", "test acc [95 % CI]", "size", "params",
            f"p50 {_setting_name(small)} [95 % CI]"]
    head += [f"p50 cold cache, {_setting_name(small)} [95 % CI]"] if cold else []
    # A bench of one batch size has no large batch: one latency column, one speed-up.
    two = large != small
    head += [f"p50 {_setting_name(large)}"] * two + ["peak memory", "energy / inference",
                                                      "size reduction"]
    head += [f"speed-up ({_setting_name(small)} / {_setting_name(large)})" if two
             else f"speed-up ({_setting_name(small)})"]
    head += [f"speed-up cold cache ({_setting_name(small)})"] if cold else []
    head += ["acc. drop (McNemar p)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        star = " *" if r["pareto"] else ""
        cells = [_name_cell(r) + star, fmt_accuracy(r["accuracy_pct"], r["accuracy_ci_pct"]),
                 fmt_bytes(r["size_bytes"]), f"{r['params']:,}",
                 fmt_ms(r["p50_small_ms"]) + fmt_ci(*r["p50_small_ci_ms"])]
        if cold:
            cells.append(fmt_ms(r["cold_p50_small_ms"]) + fmt_ci(*r["cold_p50_small_ci_ms"]))
        cells += [fmt_ms(r["p50_large_ms"])] * two
        cells += [fmt_bytes(r["memory_peak_bytes"]),
                  fmt_energy(r["energy_mj_per_inference"], r["energy_method"]),
                  f"{r['size_reduction_x']:.1f}x",
                  f"{r['speedup_small_x']:.2f}x / {r['speedup_large_x']:.2f}x" if two
                  else f"{r['speedup_small_x']:.2f}x"]
        if cold:
            x = r["cold_speedup_small_x"]
            cells.append("-" if x is None else f"{x:.2f}x")
        cells.append(fmt_drop(r["accuracy_drop_pts"], r["accuracy_drop_test"]))
        lines.append("| " + " | ".join(cells) + " |")
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
    if "accuracy_ci" in m:
        notes.append(f"Accuracy: {m['accuracy_ci']}; acc. drop p: {m['accuracy_tests']}.")
    if bench.get("cold_cache"):
        notes.append(f"Cold cache: {m['cold_latency']}.")
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
    from compress.measure.accuracy import find_paired

    models = result["models"]
    base = models[result["baseline"]]
    settings = list(base["latency"])
    cold = [s for s in settings if base["latency"][s].get("cold")]
    head = ["model", "test acc [95 % CI]", "size", "params"]
    head += [f"p50 [CI] / p90 / p99, {_setting_name(s)}" for s in settings]
    head += [f"cold p50 [CI], {_setting_name(s)}" for s in cold]
    head += ["peak memory (+ runtime)", "energy / inference", "size ratio"]
    head += [f"speed-up {s}" for s in settings] + [f"cold speed-up {s}" for s in cold]
    limit = [s for s in settings if "pct_of_limit" in base["latency"][s]]
    head += [f"% of the limit {s}" for s in limit]
    head += ["acc. drop", f"McNemar vs `{result['baseline']}`: b / c, p"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in models.items():
        label = m.get("label", name)
        cells = [f"`{name}`" + (f" ({label})" if label != name else ""),
                 fmt_accuracy(m["accuracy_pct"], m.get("accuracy_ci_pct")),
                 fmt_bytes(m["size_bytes"]), f"{m['params']:,}"]
        for s in settings:
            lat = m["latency"][s]
            cells.append(fmt_ms(lat["p50_ms"]) + fmt_ci(lat.get("p50_ci_low_ms"),
                                                        lat.get("p50_ci_high_ms"))
                         + " / " + fmt_ms(lat["p90_ms"]) + " / " + fmt_ms(lat["p99_ms"]))
        for s in cold:
            c = m["latency"][s].get("cold") or {}
            cells.append(fmt_ms(c.get("p50_ms")) + fmt_ci(c.get("p50_ci_low_ms"),
                                                          c.get("p50_ci_high_ms")))
        mem = m.get("memory")
        cells.append(f"{fmt_bytes(mem['peak_delta_bytes'])} (+ "
                     f"{fmt_bytes(mem['runtime_import_bytes'])})" if mem else "-")
        energy = m.get("energy") or {}
        cells.append(" / ".join(f"{fmt_energy(e['mj_per_inference'])} (b{e['samples_per_call']})"
                                for e in energy.values()) or "-")
        cells.append(f"{base['size_bytes'] / m['size_bytes']:.1f}x")
        for s in settings:
            cells.append(f"{base['latency'][s]['p50_ms'] / m['latency'][s]['p50_ms']:.2f}x")
        for s in cold:
            c = m["latency"][s].get("cold")
            cells.append(f"{base['latency'][s]['cold']['p50_ms'] / c['p50_ms']:.2f}x" if c
                         else "-")
        cells += [f"{m['latency'][s]['pct_of_limit']:.0f} %" for s in limit]
        cells.append(f"{base['accuracy_pct'] - m['accuracy_pct']:+.2f} pts")
        t = find_paired(result.get("accuracy_tests", []), result["baseline"], name)
        cells.append("-" if t is None or name == result["baseline"] else
                     f"{t['only_a_correct']} / {t['only_b_correct']}, p {t['p_value']:.2g}")
        rows.append("| " + " | ".join(cells) + " |")
    method = result.get("method", {})
    notes = ["", f"Latency: {method.get('latency', '?')}."]
    if result.get("limit"):
        notes += ["", f"Limit: {method.get('limit', '?')}. Measured: " + "; ".join(
            f"{t['threads'] or 'all'} thread(s): floor {t['floor_ms'] * 1000:.1f} us, fp32 "
            f"{t['fp32_gmacs']:.0f} GMAC/s, u8s8 {t['int8_gmacs']:.0f} GMAC/s "
            f"({t['int8_kernel']})" for t in result["limit"].values()) + "."]
    notes += [""] + summary_notes(result)
    return "\n".join(rows + notes)


def _plot_link(name: str) -> str:
    return f"![{Path(name).stem.replace('_', ' ')}]({name})"


def pipeline_report(manifest: dict, root: Path, plots: list[str] | None = None) -> str:
    """The whole run: summary first, then stages (with energy), bench details, gates."""
    from compress.artifacts import read_json
    from compress.report.plots import bench_plot_names

    ids = [sid for sid, st in manifest["stages"].items() if st["stage"] == "bench"]
    order = bench_order(manifest, ids)  # the bench the gates read first, with its plots
    benches = {sid: read_json(root / sid / "bench.json") for sid in order}
    lines = [f"# Report: pipeline `{manifest['pipeline']}`", ""]
    plots = list(plots or [])
    for sid, bench in benches.items():
        why = " (the bench the gates read)" if len(order) > 1 and sid == order[0] else ""
        lines += [f"## Summary: bench `{sid}`{why}", "", summary_table(bench), ""]
        lines += [f"- {n}" for n in summary_notes(bench)] + [""]
        own = [p for p in bench_plot_names(sid, order[0]).values() if p in plots]
        lines += [line for p in own for line in (_plot_link(p), "")]
        plots = [p for p in plots if p not in own]
    lines += [line for p in plots for line in (_plot_link(p), "")]

    lines += ["## Stages", "", "| stage | kind | status | wall time | energy | key figures |",
              "|---|---|---|---|---|---|"]
    for sid, st in manifest["stages"].items():
        m = st.get("metrics", {})
        figures = []
        for key in ("test_accuracy_pct", "baseline_test_accuracy_pct",
                    "without_teacher_test_accuracy_pct", "ort_test_accuracy_pct", "params",
                    "size_bytes",
                    "epochs_run", "parity_max_abs_diff", "device", "channels_kept", "setting",
                    "int8_ops", "float_ops", "float_islands", "transposes", "note"):
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
    # A stage's own warning, the teacher check's, and the training loop's when the best epoch
    # was the last one.
    warnings = [(sid, st["metrics"][key]) for sid, st in manifest["stages"].items()
                for key in ("warning", "teacher_warning", "last_epoch_warning")
                if (st.get("metrics") or {}).get(key)]
    if warnings:
        lines += ["", "Warnings:"] + [f"- `{sid}`: {w}" for sid, w in warnings]
    choices = [f"- `{sid}`: alpha auto kept {st['metrics']['alpha_choice']}"
               for sid, st in manifest["stages"].items()
               if (st.get("metrics") or {}).get("alpha_choice")]
    if choices:
        lines += ["", "Choices made by the run:", "", *choices]
    baseline = [f"- `{sid}`: {st['metrics']['baseline_warning']}"
                for sid, st in manifest["stages"].items()
                if (st.get("metrics") or {}).get("baseline_warning")]
    if baseline:
        lines += ["", "**Warnings** (a model below the plain baseline):", "", *baseline]
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
    from compress.report.targets import targets_table  # it formats with this module's helpers

    targets = targets_table(manifest)
    if targets:
        lines += ["", *targets]
    from compress.report.runtimes import runtime_table

    for sid, bench in benches.items():
        lines += ["", f"## Benchmark `{sid}`", "", bench_table(bench) + runtime_table(bench)]
    from compress.report.text import embed_bench_table

    for sid, st in manifest["stages"].items():
        if st["stage"] == "embed_bench" and (root / sid / "bench.json").is_file():
            lines += ["", f"## Sentence encoders: bench `{sid}`", "",
                      embed_bench_table(read_json(root / sid / "bench.json"))]


    for sid, st in manifest["stages"].items():
        if st["stage"] == "search" and (root / sid / "search.md").is_file():
            # the search's own page: every trial, the pick as YAML steps, then the front
            body = (root / sid / "search.md").read_text().split("\n", 1)[1]
            lines += ["", f"## Student search `{sid}`", body.rstrip(), "",
                      f"![Pareto front]({sid}/front.png)"]
    for sid, st in manifest["stages"].items():
        if st["stage"] == "explain":
            from compress.report.explain import explain_markdown

            lines += ["", f"## Attribution fidelity `{sid}`", "",
                      explain_markdown(read_json(root / sid / "explain.json")), "",
                      f"![attribution fidelity]({sid}/fidelity.png)", "",
                      f"![attribution maps]({sid}/attribution_grid.png)"]
    gates = manifest.get("gates")
    if gates:
        lines += ["", "## Gates", "", "| gate | wanted | measured | result | note |",
                  "|---|---|---|---|---|"]
        for g in gates:
            lines.append(f"| {g['gate']} | {g['wanted']} | {g['measured']} | "
                         f"{'pass' if g['passed'] else '**FAIL**'} | {g.get('note', '')} |")
    v = manifest.get("versions", {})
    data = dict(manifest.get("data", {}))
    source = data.pop("source", "?")
    spec = ", ".join(f"{k} {v}" for k, v in data.items())
    lines += ["", f"Data: {source} ({spec}). Versions: "
              + ", ".join(f"{k} {val}" for k, val in v.items()) + "."]
    if manifest.get("seeds"):
        lines += ["", "Seeds: " + ", ".join(f"{k} {s}" for k, s in manifest["seeds"].items()) + "."]
    return "\n".join(lines) + "\n"
