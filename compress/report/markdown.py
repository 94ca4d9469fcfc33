"""Markdown for people: the bench table and the pipeline report. Numbers come from JSON written
by the stages; nothing here measures or estimates anything."""

from __future__ import annotations

from pathlib import Path


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def fmt_ms(ms: float) -> str:
    return f"{ms * 1000:.0f} us" if ms < 1 else f"{ms:.2f} ms"


def bench_table(result: dict) -> str:
    """One row per model: accuracy, size, params, latency per setting, ratios to the baseline."""
    models = result["models"]
    base = models[result["baseline"]]
    settings = list(base["latency"])
    head = ["model", "test acc (ORT)", "size", "params"]
    for s in settings:
        b, t = s.split("_")
        head.append(f"p50 / p90 / p99, batch {b[1:]}, {t[1:] if t != 't0' else 'all'} thr")
    head += ["size ratio"] + [f"speed-up {s}" for s in settings]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in models.items():
        cells = [f"`{name}`", f"{m['accuracy_pct']:.2f} %", fmt_bytes(m["size_bytes"]),
                 f"{m['params']:,}"]
        for s in settings:
            lat = m["latency"][s]
            cells.append(" / ".join(fmt_ms(lat[k]) for k in ("p50_ms", "p90_ms", "p99_ms")))
        cells.append(f"{base['size_bytes'] / m['size_bytes']:.1f}x")
        for s in settings:
            cells.append(f"{base['latency'][s]['p50_ms'] / m['latency'][s]['p50_ms']:.2f}x")
        rows.append("| " + " | ".join(cells) + " |")
    cpu = result.get("cpu", {})
    notes = [
        "",
        f"Ratios are against `{result['baseline']}`, measured in the same run. "
        f"Accuracy on {result.get('test_samples', '?')} held-out test samples.",
        f"Latency: {result['method']['latency']}.",
        f"CPU: {cpu.get('cpu_model', '?')} ({cpu.get('logical_cores', '?')} logical cores; "
        f"ISA: {', '.join(cpu.get('isa', [])) or 'none detected'}); onnxruntime "
        f"{result.get('versions', {}).get('onnxruntime', '?')}.",
    ]
    return "\n".join(rows + notes)


def pipeline_report(manifest: dict, root: Path) -> str:
    """The whole run: stages with their key metrics, bench tables, gates."""
    from compress.artifacts import read_json

    lines = [f"# Report: pipeline `{manifest['pipeline']}`", ""]
    lines += ["## Stages", "", "| stage | kind | status | wall time | key figures |",
              "|---|---|---|---|---|"]
    for sid, st in manifest["stages"].items():
        m = st.get("metrics", {})
        figures = []
        for key in ("test_accuracy_pct", "ort_test_accuracy_pct", "params", "size_bytes",
                    "epochs_run", "parity_max_abs_diff", "device"):
            if key in m:
                v = m[key]
                figures.append(f"{key} {v:.4g}" if isinstance(v, float) else f"{key} {v}")
        if st["stage"] == "bench":
            models = sorted({k.split(".")[0] for k in m})
            figures.append(f"{len(models)} model(s): {', '.join(models)}")
        lines.append(f"| `{sid}` | {st['stage']} | {st['status']} | {st['wall_time_s']:.1f} s "
                     f"| {', '.join(figures)} |")
    for sid, st in manifest["stages"].items():
        if st["stage"] == "bench":
            bench = read_json(root / sid / "bench.json")
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
