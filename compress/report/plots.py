"""PNG plots of a pipeline run: accuracy vs latency with the Pareto front, model size per stage
and peer, energy per inference per model, energy per stage. Axes carry units, every plot a
legend; energy plots name their method. Drawn on bare `Figure` objects (Agg canvas), so no
pyplot global state and no display are needed."""

from __future__ import annotations

from pathlib import Path

from compress.report.summary import (
    headline_settings,
    pareto_front,
    stage_energy_rows,
    stage_size_rows,
    summary_rows,
)

COLORS = {"model": "#1f77b4", "peer": "#ff7f0e", "checkpoint": "#7f7f7f", "ONNX": "#1f77b4"}
DPI = 120
# Below the axes, so that a legend never hides a bar.
LEGEND_BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.18), "ncol": 3, "fontsize": 8,
                "frameon": False}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots()


def _save(fig, path: Path) -> None:
    from compress.artifacts import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _setting_words(setting: str) -> str:
    b, t = setting.split("_")
    threads = "all threads" if t == "t0" else f"{t[1:]} thread" + ("s" if t != "t1" else "")
    return f"batch {b[1:]}, {threads}"


def _value_labels(ax, names: list[str], values: list[float], unc: list[float], unit: str):
    """Value beside each bar, past the end of its error bar so the two do not overlap."""
    for i, (v, u) in enumerate(zip(values, unc, strict=True)):
        ax.text(v + u, i, f"  {v:.3g} {unit}", va="center", fontsize=8)


def _size_unit(values: list[float]) -> tuple[float, str]:
    top = max(values)
    return (1024**2, "MiB") if top >= 1024**2 else (1024, "KiB")


def plot_accuracy_latency(bench: dict, path: Path) -> None:
    rows = summary_rows(bench)
    small, _ = headline_settings(bench)
    fig, ax = _figure(8, 5.5)
    for role, marker, label in (("model", "o", "pipeline model"), ("peer", "s", "peer baseline")):
        sel = [r for r in rows if r["role"] == role]
        if not sel:
            continue
        x = [r["p50_small_ms"] for r in sel]
        lo = [max(r["p50_small_ms"] - (r["p50_small_ci_ms"][0] or r["p50_small_ms"]), 0)
              for r in sel]
        hi = [max((r["p50_small_ci_ms"][1] or r["p50_small_ms"]) - r["p50_small_ms"], 0)
              for r in sel]
        ax.errorbar(x, [r["accuracy_pct"] for r in sel], xerr=[lo, hi], fmt=marker, ms=8,
                    color=COLORS[role], capsize=3, label=f"{label} (bar: 95 % CI of p50)")
    points = {r["model"]: (r["p50_small_ms"], r["accuracy_pct"]) for r in rows}
    front = pareto_front(points)
    fx, fy = [points[n][0] for n in front], [points[n][1] for n in front]
    ax.step(fx, fy, where="post", color="#2ca02c", linestyle="--", linewidth=1.5)
    ax.plot(fx, fy, "o", ms=16, mfc="none", mec="#2ca02c", mew=2,
            label="Pareto front (no model both faster and more accurate)",
            linestyle="--", color="#2ca02c")
    # Labels alternate above and below in latency order, so that neighbours do not overlap.
    for i, r in enumerate(sorted(rows, key=lambda r: r["p50_small_ms"])):
        ax.annotate(r["model"], (r["p50_small_ms"], r["accuracy_pct"]), fontsize=8,
                    textcoords="offset points", xytext=(6, 9 if i % 2 == 0 else -15))
    lats = [p[0] for p in points.values()]
    if max(lats) / max(min(lats), 1e-9) > 8:
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.margins(x=0.12)  # room for the labels of the outermost points
    accs = [p[1] for p in points.values()]
    pad = max(max(accs) - min(accs), 1.0) * 0.15
    ax.set_ylim(min(accs) - pad, min(max(accs) + pad, 100.5))
    ax.set_xlabel(f"p50 latency per call, {_setting_words(small)} (ms, log scale; lower is "
                  "better)" if ax.get_xscale() == "log" else
                  f"p50 latency per call, {_setting_words(small)} (ms, lower is better)")
    ax.set_ylabel("test accuracy (%, higher is better)")
    ax.set_title(f"Accuracy vs latency ({bench.get('cpu', {}).get('cpu_model', 'CPU')})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


def plot_sizes(manifest: dict, bench: dict | None, path: Path) -> None:
    rows = [{**r, "color": COLORS[r["kind"]], "hatch": ""} for r in stage_size_rows(manifest)]
    if bench:
        for name, m in bench["models"].items():
            if m.get("role") == "peer" and not any(r["name"] == name for r in rows):
                kind = "checkpoint" if m.get("runtime") == "torch" else "ONNX"
                rows.append({"name": name, "kind": kind, "size_bytes": m["size_bytes"],
                             "color": COLORS[kind], "hatch": "//"})
    fig, ax = _figure(8, 1.5 + 0.45 * len(rows))
    scale, unit = _size_unit([r["size_bytes"] for r in rows])
    names = [f"{r['name']} ({r['kind']})" for r in rows]
    values = [r["size_bytes"] / scale for r in rows]
    bars = ax.barh(names, values, color=[r["color"] for r in rows],
                   hatch=[r["hatch"] for r in rows], edgecolor="black", linewidth=0.5)
    ax.bar_label(bars, labels=[f"{v:.3g} {unit}" for v in values], padding=3, fontsize=8)
    ax.invert_yaxis()  # pipeline order top to bottom
    ax.set_xlabel(f"file size ({unit})")
    ax.set_title("Model size per pipeline stage and peer baseline")
    ax.set_xlim(0, max(values) * 1.25)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=COLORS["checkpoint"], label="PyTorch checkpoint (.pt)"),
                       Patch(color=COLORS["ONNX"], label="ONNX model"),
                       Patch(facecolor="white", edgecolor="black", hatch="//",
                             label="peer baseline")], **LEGEND_BELOW)
    _save(fig, path)


def plot_energy(bench: dict, path: Path) -> None:
    rows = [r for r in summary_rows(bench) if r["energy_mj_per_inference"] is not None]
    small, _ = headline_settings(bench)
    fig, ax = _figure(8, 1.8 + 0.45 * len(rows))
    values = [r["energy_mj_per_inference"] for r in rows]
    unc = [v * (r["energy_uncertainty_pct"] or 0) / 100 for v, r in zip(values, rows,
                                                                         strict=True)]
    lower = [min(u, v) for u, v in zip(unc, values, strict=True)]  # energy is never negative
    names = [r["model"] for r in rows]
    ax.barh(names, values, xerr=[lower, unc] if any(unc) else None, capsize=3,
            color=[COLORS[r["role"]] for r in rows], edgecolor="black", linewidth=0.5)
    _value_labels(ax, names, values, unc, "mJ")
    ax.invert_yaxis()
    ax.set_xlabel(f"energy per inference, {_setting_words(small)} (mJ)")
    label = rows[0]["energy_label"] if rows else "not measured"
    ax.set_title(f"Energy per inference\nmethod: {label}", fontsize=10)
    ax.set_xlim(0, max([v + u for v, u in zip(values, unc, strict=True)] or [1]) * 1.3)
    from matplotlib.patches import Patch

    handles = [Patch(color=COLORS["model"], label="pipeline model"),
               Patch(color=COLORS["peer"], label="peer baseline")]
    if any(unc):
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", marker="|", linestyle="-",
                              label="power-model uncertainty"))
    ax.legend(handles=handles, **LEGEND_BELOW)
    _save(fig, path)


def plot_stage_energy(manifest: dict, path: Path) -> None:
    rows = stage_energy_rows(manifest)
    fig, ax = _figure(8, 1.8 + 0.45 * len(rows))
    scale, unit = (1000.0, "kJ") if max([r["joules"] for r in rows] or [0]) >= 1000 else (1.0,
                                                                                      "J")
    values = [r["joules"] / scale for r in rows]
    unc = [v * (r["uncertainty_pct"] or 0) / 100 for v, r in zip(values, rows, strict=True)]
    names = [f"{r['stage_id']} ({r['stage']})" for r in rows]
    ax.barh(names, values, xerr=[[min(u, v) for u, v in zip(unc, values, strict=True)], unc]
            if any(unc) else None, capsize=3, color="#9467bd", edgecolor="black",
            linewidth=0.5, label="energy of the stage's run" + (" (bar: uncertainty)"
                                                                   if any(unc) else ""))
    _value_labels(ax, names, values, unc, unit)
    ax.invert_yaxis()
    ax.set_xlabel(f"energy ({unit})")
    methods = "; ".join(sorted({r["label"] for r in rows}))
    ax.set_title(f"Energy per pipeline stage\nmethod: {methods}", fontsize=10)
    ax.set_xlim(0, max([v + u for v, u in zip(values, unc, strict=True)] or [1]) * 1.3)
    ax.legend(**LEGEND_BELOW)
    _save(fig, path)


def write_plots(manifest: dict, root: Path, bench_id: str | None, bench: dict | None) -> list[str]:
    """Draw every plot the data allows into `root`; return the file names written."""
    written = []
    if bench is not None:
        plot_accuracy_latency(bench, root / "accuracy_vs_latency.png")
        written.append("accuracy_vs_latency.png")
    if stage_size_rows(manifest) or bench is not None:
        plot_sizes(manifest, bench, root / "size.png")
        written.append("size.png")
    if bench is not None and any(m.get("energy") for m in bench["models"].values()):
        plot_energy(bench, root / "energy_per_inference.png")
        written.append("energy_per_inference.png")
    if stage_energy_rows(manifest):
        plot_stage_energy(manifest, root / "energy_per_stage.png")
        written.append("energy_per_stage.png")
    return written
