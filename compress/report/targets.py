"""The report's deployment-target table: every build that states a target (cpu or mobile) side
by side, with its accuracy, size, CPU latency from a bench stage and how many nodes onnxruntime's
mobile usability checker says each mobile EP can run. Reads the manifest only; measures nothing.
"""

from __future__ import annotations

from compress.report.units import fmt_bytes, fmt_ms

EPS = (("nnapi", "NNAPI"), ("coreml_mlprogram", "CoreML MLProgram"),
       ("coreml_neuralnetwork", "CoreML NeuralNetwork"))


def _latency(manifest: dict, sid: str) -> tuple[float | None, str]:
    """p50 at batch 1, one thread, from the last bench stage that measured `sid`."""
    for bid, st in reversed(list(manifest["stages"].items())):
        if st["stage"] != "bench":
            continue
        p50 = st.get("metrics", {}).get(f"{sid}.b1_t1.p50_ms")
        if p50 is not None:
            return p50, bid
    return None, ""


def _coverage(m: dict, key: str) -> str:
    total = m.get(f"{key}_nodes_total")
    if total is None:
        return "-"
    cell = f"{m[f'{key}_nodes_supported']}/{total} ({m[f'{key}_partitions']} part.)"
    ops = m.get(f"{key}_unsupported_ops")
    return cell + (f": {ops}" if ops and ops != "none" else "")


def targets_table(manifest: dict) -> list[str]:
    """Markdown lines of the section; [] when no stage states a target."""
    rows = [(sid, st) for sid, st in manifest["stages"].items()
            if st.get("metrics", {}).get("target")]
    if not rows:
        return []
    lines = ["## Deployment targets", "",
             "| build | stage | target | setting | input | test acc. | size | CPU p50 b1 | "
             + " | ".join(name for _, name in EPS) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(EPS)]
    benches = set()
    for sid, st in rows:
        m = st["metrics"]
        acc = m.get("test_accuracy_pct", m.get("ort_test_accuracy_pct"))
        p50, bid = _latency(manifest, sid)
        if bid:
            benches.add(bid)
        lines.append(
            f"| `{sid}` | {st['stage']} | {m['target']} | {m.get('setting') or '-'} | "
            f"{m.get('input_shape') or 'dynamic batch'} | "
            f"{'-' if acc is None else f'{acc:.2f} %'} | {fmt_bytes(m.get('size_bytes'))} | "
            f"{fmt_ms(p50) if p50 is not None else '-'} | "
            + " | ".join(_coverage(m, key) for key, _ in EPS) + " |")
    lines += ["", "EP columns: nodes each execution provider can run / all nodes, and partitions, "
              "per onnxruntime's mobile usability checker (op types, shapes and rank against the "
              "EP's op list; per-op caveats and the device are not checked). CPU p50: this "
              "machine's CPU at batch 1, one thread"
              + (f" (bench {', '.join(f'`{b}`' for b in sorted(benches))})" if benches else "")
              + ", a stand-in for the device, not a phone measurement.", ""]
    return lines
