"""The `explain` stage's report: the fidelity table (markdown), a bar chart of fidelity per model
with the randomization and other-class references, and a grid of inputs with every model's map
side by side (images as heatmaps; sequences and tables as curves over a coloured band)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.report.plots import DPI

METRIC_WORDS = {"spearman": "Spearman vs teacher", "topk_overlap": "top-k overlap",
                "top_region_agreement": "top region agrees"}
CMAP = "RdBu_r"  # red: evidence for the class; blue: against it


def _ci(m: dict) -> str:
    return f"{m['mean']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def explain_markdown(result: dict) -> str:
    """Fidelity per model against the teacher, the references, the cascade and the method."""
    k = result["sample"]["top_k"]
    head = ["model", "Spearman vs teacher [95 % CI]", f"top-{k} overlap [CI]",
            "top region agrees [CI]", "same prediction", "fidelity counts?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in result["models"].items():
        counts = ("teacher" if m["role"] == "teacher" else
                  "yes" if m["counts"] else "**no**: not clearly above the references")
        lines.append(f"| `{name}` | {_ci(m['spearman'])} | {_ci(m['topk_overlap'])} | "
                     f"{_ci(m['top_region_agreement'])} | {m['prediction_agreement']:.1%} | "
                     f"{counts} |")
    for ref in result["references"].values():
        lines.append(f"| reference: {ref['label']} | {_ci(ref['spearman'])} | "
                     f"{_ci(ref['topk_overlap'])} | {_ci(ref['top_region_agreement'])} | - | - |")
    cascade = result["references"]["randomized"].get("cascade", [])
    lines += ["", "Cascading randomization of the teacher (groups re-initialized from the output "
              "down):", "", "| level | groups re-initialized | Spearman [CI] | top-k overlap |",
              "|---|---|---|---|"]
    for c in cascade:
        lines.append(f"| {c['level']} | {', '.join(c['groups'])} | {_ci(c['spearman'])} | "
                     f"{c['topk_overlap']['mean']:.3f} |")
    g = result.get("gradients")
    if g:
        lines += ["", f"Gradient-based comparison ({g['method'].replace('_', ' ')}, PyTorch "
                  "checkpoints): teacher's gradient maps vs its ORT occlusion maps, Spearman "
                  f"{_ci(g['teacher_vs_occlusion_spearman'])}"]
        for c, s in g["checkpoints"].items():
            lines.append(f"- `{c}` vs the teacher (gradient maps): Spearman {_ci(s)}")
    s = result["sample"]
    sanity = result["sanity_check"]
    lines += ["", f"- Sample: {s['size']} of {s['test_split_size']} test inputs (seed "
              f"{s['seed']}), {s['features']} features each; target: the teacher's predicted "
              "class.",
              f"- Method: {result['method']}.",
              f"- Sanity check (Adebayo et al. 2018): passed: both references stay below "
              f"Spearman {sanity['max_spearman']:g} (highest: {sanity['highest_reference']}); "
              f"a model's fidelity counts above {result['reference_spearman_bar']:.3f}."]
    return "\n".join(lines)


def _figure(width: float, height: float, rows: int = 1, cols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig, path: Path) -> None:
    from compress.artifacts import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_fidelity(result: dict, path: Path) -> None:
    """One panel per metric: a bar per model (95 % CI) and the references as lines."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    models = {n: m for n, m in result["models"].items() if m["role"] != "teacher"}
    names = list(models)
    refs = result["references"]
    fig, axes = _figure(11, 1.9 + 0.45 * len(names), 1, 3)
    styles = {"randomized": ("#d62728", "--"), "other_class": ("#9467bd", ":")}
    for ax, metric in zip(axes[0], METRIC_WORDS, strict=True):
        vals = [models[n][metric]["mean"] for n in names]
        err = [[v - models[n][metric]["ci_low"] for n, v in zip(names, vals, strict=True)],
               [models[n][metric]["ci_high"] - v for n, v in zip(names, vals, strict=True)]]
        colors = ["#2ca02c" if models[n]["counts"] else "#7f7f7f" for n in names]
        ax.barh(names, vals, xerr=err, capsize=3, color=colors, edgecolor="black",
                linewidth=0.5)
        for i, v in enumerate(vals):
            ax.text(0.02, i, f"{v:.2f}", va="center", fontsize=8, color="white",
                    fontweight="bold")
        for key, (color, style) in styles.items():
            r = refs[key][metric]
            ax.axvline(r["mean"], color=color, linestyle=style, linewidth=1.5)
            ax.axvspan(r["ci_low"], r["ci_high"], color=color, alpha=0.12)
        ax.invert_yaxis()
        ax.set_xlim(min(0.0, *(r[metric]["ci_low"] for r in refs.values())) - 0.02, 1.02)
        ax.set_xlabel(METRIC_WORDS[metric] + (f" (k = {result['sample']['top_k']})"
                                              if metric == "topk_overlap" else ""))
        ax.grid(True, axis="x", alpha=0.3)
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    fig.suptitle(f"Attribution fidelity vs the teacher `{result['teacher']}` "
                 f"({result['sample']['size']} test samples, bar: 95 % CI)", fontsize=10)
    handles = [Patch(color="#2ca02c", label="fidelity counts (clearly above both references)"),
               Patch(color="#7f7f7f", label="does not count"),
               Line2D([], [], color=styles["randomized"][0], linestyle="--",
                      label="reference: randomized teacher (shade: CI)"),
               Line2D([], [], color=styles["other_class"][0], linestyle=":",
                      label="reference: teacher, random other class")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    _save(fig, path)


def _pick_rows(target: np.ndarray, count: int) -> list[int]:
    """Samples for the grid: one per predicted class first, in order, then the next ones."""
    rows, seen = [], set()
    for i, t in enumerate(target):
        if t not in seen:
            rows.append(i)
            seen.add(t)
    rows += [i for i in range(len(target)) if i not in rows]
    return rows[:count]


def plot_grid(x: np.ndarray, target: np.ndarray, labels: list[str], maps: dict[str, np.ndarray],
              per_sample: dict[str, np.ndarray], spatial: tuple[int, ...], count: int,
              path: Path) -> None:
    """Rows: samples; columns: the input, then each model's map (teacher first), each scaled
    to its own largest |value| (red: evidence for the teacher's class, blue: against)."""
    rows = _pick_rows(target, count)
    names = list(maps)
    image = len(spatial) == 2
    cell = 1.6 if image else 2.2
    fig, axes = _figure(cell * (len(names) + (1 if image else 0)) + 0.6, 1.35 * len(rows) + 0.9,
                        len(rows), len(names) + (1 if image else 0))
    for r, i in enumerate(rows):
        sample = x[i] if x.ndim == 2 else x[i][0]  # first channel
        first = axes[r][0]
        if image:
            first.imshow(sample, cmap="gray_r")
            first.set_ylabel(f"class {labels[target[i]]}", fontsize=8)
        for c, name in enumerate(names):
            ax = axes[r][c + (1 if image else 0)]
            m = maps[name][i].reshape(spatial)
            lim = float(np.abs(m).max()) or 1.0
            if image:
                im = ax.imshow(m, cmap=CMAP, vmin=-lim, vmax=lim)
                ax.contour(sample, levels=[float(np.median(sample))], colors="black",
                           linewidths=0.6, alpha=0.6)
            else:
                ys = sample.ravel()
                pad = 0.1 * (ys.max() - ys.min() or 1.0)
                im = ax.imshow(m[None, :], cmap=CMAP, vmin=-lim, vmax=lim, aspect="auto",
                               alpha=0.75, extent=(-0.5, len(ys) - 0.5, ys.min() - pad,
                                                   ys.max() + pad))
                ax.plot(np.arange(len(ys)), ys, color="black", linewidth=1.0)
                if c == 0:
                    ax.set_ylabel(f"class {labels[target[i]]}", fontsize=8)
            rho = per_sample.get(name)
            if r == 0:
                ax.set_title(name, fontsize=8)
            if rho is not None and c > 0:
                ax.set_xlabel(f"rho {rho[i]:.2f}", fontsize=7, labelpad=1)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if image:
        axes[0][0].set_title("input", fontsize=8)
    cbar = fig.colorbar(im, ax=axes, shrink=0.6, location="right", ticks=[])
    cbar.set_label("attribution, each map scaled to its max |value|\n(red: evidence for the "
                   "teacher's class, blue: against)", fontsize=7)
    fig.suptitle("Occlusion maps for the teacher's predicted class (rho: Spearman with the "
                 "teacher's map)", fontsize=9)
    _save(fig, path)
