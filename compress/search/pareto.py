"""The Pareto front of finished trials (val accuracy up, ORT p50 latency down), the pick (the
fastest trial inside the constraint), and the tables and picture of them. No optuna, no torch:
a trial here is a plain dict with `val_accuracy_pct` and `p50_ms`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from compress import artifacts

COLUMNS = ("number", "hash", "status", "stopped_at", "model", "temperature", "alpha", "epochs",
           "prune_ratio", "int8", "params", "macs", "size_bytes", "p50_ms", "untrained_p50_ms",
           "short_val_accuracy_pct", "val_accuracy_pct", "test_accuracy_pct", "feasible",
           "pareto", "cached", "wall_time_s")


def dominates(a: dict, b: dict) -> bool:
    """`a` is at least as accurate and as fast as `b`, and better in one of the two."""
    ge = a["val_accuracy_pct"] >= b["val_accuracy_pct"] and a["p50_ms"] <= b["p50_ms"]
    gt = a["val_accuracy_pct"] > b["val_accuracy_pct"] or a["p50_ms"] < b["p50_ms"]
    return ge and gt


def pareto_front(trials: list[dict]) -> list[dict]:
    """The trials no other trial dominates, fastest first (ties: the first trial kept)."""
    front, seen = [], set()
    for t in trials:
        key = (t["val_accuracy_pct"], t["p50_ms"])
        if key in seen or any(dominates(o, t) for o in trials):
            continue
        seen.add(key)
        front.append(t)
    return sorted(front, key=lambda t: (t["p50_ms"], -t["val_accuracy_pct"]))


def pick(trials: list[dict], floor_pct: float) -> dict | None:
    """The fastest trial with val accuracy >= floor_pct (ties: the more accurate); None when no
    trial meets it."""
    ok = [t for t in trials if t["val_accuracy_pct"] >= floor_pct]
    return min(ok, key=lambda t: (t["p50_ms"], -t["val_accuracy_pct"])) if ok else None


def table_rows(trials: list[dict]) -> list[dict]:
    rows = []
    for t in trials:
        row = {c: t.get(c) for c in COLUMNS}
        if isinstance(row["model"], dict):
            row["model"] = artifacts.canonical_json(row["model"])
        rows.append(row)
    return rows


def to_csv(trials: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(table_rows(trials))
    return buf.getvalue()


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def to_markdown(trials: list[dict]) -> str:
    cols = ("number", "status", "stopped_at", "model", "epochs", "prune_ratio", "int8", "params",
            "p50_ms", "val_accuracy_pct", "feasible", "pareto", "cached")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table_rows(trials):
        lines.append("| " + " | ".join(_cell(row[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot_front(path: Path, trials: list[dict], front: list[dict], chosen: dict | None,
               references: dict[str, dict], floor_pct: float, batch_size: int,
               threads: int) -> None:
    """Accuracy against latency: every finished trial, the front as a line, the pick, the
    references (the teacher, a hand-tuned student) and the constraint as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([t["p50_ms"] for t in trials], [t["val_accuracy_pct"] for t in trials],
               s=18, c="0.65", label="trials")
    ax.plot([t["p50_ms"] for t in front], [t["val_accuracy_pct"] for t in front], "o-",
            c="tab:blue", ms=5, label="Pareto front")
    if chosen is not None:
        ax.scatter([chosen["p50_ms"]], [chosen["val_accuracy_pct"]], s=120, marker="*",
                   c="tab:red", zorder=5, label="pick")
    for (name, ref), marker in zip(references.items(), "sD^vP", strict=False):
        ax.scatter([ref["p50_ms"]], [ref["val_accuracy_pct"]], s=60, marker=marker,
                   zorder=4, label=name)
    ax.axhline(floor_pct, ls="--", c="0.4", lw=1, label=f"constraint {floor_pct:.4g} %")
    ax.set_xscale("log")
    ax.set_xlabel(f"ORT p50 latency, ms (batch {batch_size}, {threads} thread(s))")
    ax.set_ylabel("val accuracy, %")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(path)
