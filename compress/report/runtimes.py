"""The runtime table of a bench (`runtimes:`) as Markdown: per model and runtime, loads or why
not, test accuracy, agreement with Python onnxruntime, p50 per batch size."""

from __future__ import annotations

from compress.report.units import fmt_ms


def runtime_table(bench: dict) -> str:
    """'' when the bench measured onnxruntime alone."""
    table = bench.get("runtimes")
    if not table:
        return ""
    names = list(table["runtimes"])
    settings = sorted({s for per in table["models"].values() for rec in per.values()
                       for s in rec.get("latency", {})},
                      key=lambda s: int(s[1:].split("_")[0]))
    batches = sorted({int(s[1:].split("_")[0]) for s in settings})
    head = ["model", "runtime", "loads", "test acc", "agrees with onnxruntime"]
    head += [f"p50 batch {b}" for b in batches]
    lines = ["", "", "### Runtimes", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, per in table["models"].items():
        for r in names:
            info = table["runtimes"][r]
            if info["status"] != "measured":
                lines.append(f"| `{model}` | {r} | {info['status']} ({info['install']}) |"
                             + " - |" * (len(head) - 3))
                continue
            rec = per.get(r)
            if rec is None:
                continue
            if not rec["loaded"]:
                why = (f"no: `{rec['unsupported_op']}` unsupported" if rec.get("unsupported_op")
                       else f"no: {rec['error'][:120]}")
                lines.append(f"| `{model}` | {r} | {why.replace('|', '/')} |"
                             + " - |" * (len(head) - 3))
                continue
            lat = {v["batch_size"]: v["p50_ms"] for v in rec["latency"].values()}
            cells = [f"`{model}`", r, "yes", f"{rec['accuracy_pct']:.2f} %",
                     f"{rec['agree']}/{rec['samples']}"]
            cells += [fmt_ms(lat[b]) if b in lat else "- (fixed batch)" for b in batches]
            lines.append("| " + " | ".join(cells) + " |")
    versions = ", ".join(f"{r} {i.get('version')}" for r, i in table["runtimes"].items()
                         if i["status"] == "measured")
    lines += ["", f"Versions: {versions}; threads: {table['threads']} (onnxruntime-web: 1). "
              f"{table.get('method', '')}"]
    return "\n".join(lines)
