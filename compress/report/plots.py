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


def _bar(value: float, bound: float | None, above: bool) -> float:
    """Length of one side of an error bar (0 where the interval was not recorded)."""
    if bound is None:
        return 0.0
    return max(bound - value, 0.0) if above else max(value - bound, 0.0)


def plot_accuracy_latency(bench: dict, path: Path) -> None:
    rows = summary_rows(bench)
    small, _ = headline_settings(bench)
    fig, ax = _figure(8, 5.5)
    for role, marker, label in (("model", "o", "pipeline model"), ("peer", "s", "peer baseline")):
        sel = [r for r in rows if r["role"] == role]
        if not sel:
            continue
        x = [r["p50_small_ms"] for r in sel]
        y = [r["accuracy_pct"] for r in sel]
        xerr = [[_bar(r["p50_small_ms"], r["p50_small_ci_ms"][0], False) for r in sel],
                [_bar(r["p50_small_ms"], r["p50_small_ci_ms"][1], True) for r in sel]]
        ci = [r["accuracy_ci_pct"] or [None, None] for r in sel]
        yerr = [[_bar(v, c[0], False) for v, c in zip(y, ci, strict=True)],
                [_bar(v, c[1], True) for v, c in zip(y, ci, strict=True)]]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=marker, ms=8, color=COLORS[role],
                    capsize=3, label=f"{label} (bars: 95 % CI of p50 and of accuracy)")
        cold = [(r["cold_p50_small_ms"], r["p50_small_ms"], r["accuracy_pct"]) for r in sel
                if r["cold_p50_small_ms"] is not None]
        for c, w, acc in cold:  # warm -> cold: how far a cold cache moves each model
            ax.plot([w, c], [acc, acc], ":", color=COLORS[role], linewidth=1)
        if cold:
            ax.plot([c for c, _, _ in cold], [a for _, _, a in cold], marker, ms=7, mfc="white",
                    color=COLORS[role], linestyle="none",
                    label=f"{label}, cold cache p50 (caches evicted before each call)")
    points = {r["model"]: (r["p50_small_ms"], r["accuracy_pct"]) for r in rows}
    front = pareto_front(points)
    fx, fy = [points[n][0] for n in front], [points[n][1] for n in front]
    ax.step(fx, fy, where="post", color="#2ca02c", linestyle="--", linewidth=1.5)
    ax.plot(fx, fy, "o", ms=16, mfc="none", mec="#2ca02c", mew=2,
            label="Pareto front (no model both faster and more accurate)",
            linestyle="--", color="#2ca02c")
    lats = [p[0] for p in points.values()] + [r["cold_p50_small_ms"] for r in rows
                                               if r["cold_p50_small_ms"] is not None]
    if max(lats) / max(min(lats), 1e-9) > 8:
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.margins(x=0.12)  # room for the labels of the outermost points
    accs = [p[1] for p in points.values()]
    lows = [r["accuracy_ci_pct"][0] for r in rows if r["accuracy_ci_pct"]] + accs
    highs = [r["accuracy_ci_pct"][1] for r in rows if r["accuracy_ci_pct"]] + accs
    pad = max(max(highs) - min(lows), 1.0) * 0.15
    ax.set_ylim(min(lows) - pad, min(max(highs) + pad, 100.5))
    ax.set_xlabel(f"p50 latency per call, {_setting_words(small)} (ms, log scale; lower is "
                  "better)" if ax.get_xscale() == "log" else
                  f"p50 latency per call, {_setting_words(small)} (ms, lower is better)")
    ax.set_ylabel("test accuracy (%, higher is better)")
    ax.set_title(f"Accuracy vs latency ({bench.get('cpu', {}).get('cpu_model', 'CPU')})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _place_labels(fig, ax, [(r["model"], points[r["model"]]) for r in rows])
    _save(fig, path)


def _place_labels(fig, ax, labelled: list[tuple[str, tuple[float, float]]]) -> list:
    """One label per point, none over another: each starts up and to the right of its point
    and, where it would cover a label already placed, moves down or up (alternately, further
    each time) until it is clear, with a thin line back to its point. Models with the same
    accuracy and close latencies would otherwise print over each other."""
    # Offsets in points: above the point, below it (clear of its marker and the line through
    # it), then further above and below, one line of 8-point text (+ room) at a time.
    offsets = [6 + 13 * (k // 2) if k % 2 == 0 else -17 - 13 * (k // 2) for k in range(40)]
    placed, renderer = [], None
    for name, xy in sorted(labelled, key=lambda item: item[1]):
        ann = ax.annotate(name, xy, fontsize=8, textcoords="offset points", xytext=(6, 6),
                          bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                                "alpha": 0.75},
                          arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.6,
                                      "shrinkA": 1, "shrinkB": 5})
        if renderer is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            canvas = FigureCanvasAgg(fig)  # the PNG's own canvas: same text extents
            canvas.draw()  # lays out the figure, so the axes are where the PNG has them
            renderer = canvas.get_renderer()
        for dy in offsets:
            ann.xyann = (6, dy)
            box = _text_box(ann, renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                break
        placed.append(_text_box(ann, renderer))
    return placed  # the labels' extents, in pixels


def _text_box(ann, renderer):
    """The label's own extent (an annotation's includes its line to the point)."""
    from matplotlib.text import Text

    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer)


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


BENCH_PLOTS = ("accuracy_vs_latency", "size", "energy_per_inference")


def bench_plot_names(bench_id: str, headline: str | None) -> dict[str, str]:
    """{plot: file name} of one bench's plots: the headline bench's are `accuracy_vs_latency.png`
    and so on, every other bench's carry its id (`accuracy_vs_latency_bench_targets.png`)."""
    suffix = "" if bench_id == headline else f"_{bench_id}"
    return {kind: f"{kind}{suffix}.png" for kind in BENCH_PLOTS}


def write_plots(manifest: dict, root: Path, benches: dict[str, dict],
                headline: str | None) -> list[str]:
    """Draw every plot the data allows into `root`, each bench its own (the headline bench's
    under the plain names); return the file names written, the headline's first."""
    written = []
    order = [headline] * (headline in benches) + [b for b in benches if b != headline]
    for bench_id in order:
        bench, names = benches[bench_id], bench_plot_names(bench_id, headline)
        plot_accuracy_latency(bench, root / names["accuracy_vs_latency"])
        plot_sizes(manifest, bench, root / names["size"])
        written += [names["accuracy_vs_latency"], names["size"]]
        if any(m.get("energy") for m in bench["models"].values()):
            plot_energy(bench, root / names["energy_per_inference"])
            written.append(names["energy_per_inference"])
    if not benches and stage_size_rows(manifest):
        plot_sizes(manifest, None, root / "size.png")
        written.append("size.png")
    if stage_energy_rows(manifest):
        plot_stage_energy(manifest, root / "energy_per_stage.png")
        written.append("energy_per_stage.png")
    return written
