"""What a search leaves: every finished trial as a row, the Pareto front, the pick, written as
JSON, CSV, Markdown and a PNG; `best.json` rewritten atomically after every trial."""

from __future__ import annotations

from pathlib import Path

import yaml

from compress import artifacts
from compress.search.pareto import pareto_front, pick, to_csv, to_markdown


def trial_rows(study, floor_pct: float) -> list[dict]:
    """Every finished trial (complete or stopped by the ladder) as a flat dict."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        a = t.user_attrs
        cfg = a.get("config") or {}
        row = {"number": t.number, "status": "complete" if t.state == TrialState.COMPLETE
               else "stopped", **{k: v for k, v in a.items() if k != "config"}, **cfg}
        row["stopped_at"] = a.get("stopped_at")
        if t.state == TrialState.COMPLETE:
            row["val_accuracy_pct"], row["p50_ms"] = t.values
            row["feasible"] = row["val_accuracy_pct"] >= floor_pct
        rows.append(row)
    done = [r for r in rows if r["status"] == "complete"]
    on_front = {r["number"] for r in pareto_front(done)}
    for r in rows:
        r["pareto"] = r["number"] in on_front
    return rows


def summary(rows: list[dict], floor_pct: float) -> tuple[list[dict], list[dict], dict | None]:
    done = [r for r in rows if r["status"] == "complete"]
    return done, pareto_front(done), pick(done, floor_pct)


def write_progress(cache_dir: Path, study, floor_pct: float) -> None:
    """best.json and trials.csv in the cache folder: what a killed search had found."""
    rows = trial_rows(study, floor_pct)
    done, front, chosen = summary(rows, floor_pct)
    artifacts.write_json(cache_dir / "best.json", {
        "floor_val_accuracy_pct": floor_pct, "finished_trials": len(rows),
        "pick": chosen, "front": front})
    artifacts.write_text(cache_dir / "trials.csv", to_csv(rows))


def pick_yaml(chosen: dict, teacher: str, prune_epochs: int, recipe: dict | None = None) -> str:
    """The pick as pipeline steps a user can paste (distill, prune, export, quantize), with the
    recipe fields the search trained every trial with (`recipe`: those not at their default)."""
    recipe = recipe or {}
    steps = [{"id": "student", "stage": "distill", "teacher": teacher,
              "model": chosen["model"], "temperature": chosen["temperature"],
              "alpha": chosen["alpha"], "epochs": chosen["epochs"],
              "compare_without_teacher": False, **recipe}]
    last = "student"
    if chosen.get("prune_ratio"):
        steps.append({"id": "pruned", "stage": "prune", "input": "student", "teacher": teacher,
                      "ratio": chosen["prune_ratio"], "steps": 1, "epochs": prune_epochs,
                      "temperature": chosen["temperature"], "alpha": chosen["alpha"],
                      **recipe})
        last = "pruned"
    steps.append({"id": "student_fp32", "stage": "export", "input": last})
    setting = chosen.get("int8_setting")
    if setting and setting != "off":
        steps.append({"id": "student_int8", "stage": "quantize", "input": "student_fp32",
                      "format": setting, "activation_type": "uint8"})
    return yaml.safe_dump(steps, sort_keys=False, default_flow_style=None, width=100)


def write_outputs(out: Path, rows: list[dict], floor_pct: float, references: dict[str, dict],
                  meta: dict, teacher: str, prune_epochs: int,
                  recipe: dict | None = None) -> dict | None:
    """front.json/.csv/.png, trials.csv, search.md and pick.yaml in `out`; the pick."""
    from compress.search.pareto import plot_front

    done, front, chosen = summary(rows, floor_pct)
    artifacts.write_json(out / "front.json", {**meta, "floor_val_accuracy_pct": floor_pct,
                                              "front": front, "pick": chosen,
                                              "references": references})
    artifacts.write_text(out / "front.csv", to_csv(front))
    artifacts.write_text(out / "trials.csv", to_csv(rows))
    if done:
        plot_front(out / "front.png", done, front, chosen, references, floor_pct,
                   meta["latency_batch_size"], meta["threads"])
    lines = [f"# Search `{meta['stage_id']}`", "",
             f"{len(rows)} trials finished ({len(done)} complete, {len(rows) - len(done)} "
             f"stopped by the ladder), {len(front)} on the Pareto front; constraint: val "
             f"accuracy >= {floor_pct:.2f} %; latency: ORT p50 at batch "
             f"{meta['latency_batch_size']}, {meta['threads']} thread(s).", ""]
    for name, ref in references.items():
        against = (f" (pick {ref['pick_p50_ms']:.4f} ms in the same interleaved run)"
                   if ref.get("pick_p50_ms") else "")
        lines.append(f"- reference `{name}`: val {ref['val_accuracy_pct']:.2f} %, p50 "
                     f"{ref['p50_ms']:.4f} ms{against}")
    if chosen:
        lines += ["", f"Pick: trial {chosen['number']}, val {chosen['val_accuracy_pct']:.2f} %, "
                  f"p50 {chosen['p50_ms']:.4f} ms. As pipeline steps:", "", "```yaml",
                  pick_yaml(chosen, teacher, prune_epochs, recipe).rstrip(), "```"]
        artifacts.write_text(out / "pick.yaml", pick_yaml(chosen, teacher, prune_epochs, recipe))
    lines += ["", "## Every trial", "", to_markdown(rows)]
    artifacts.write_text(out / "search.md", "\n".join(lines))
    return chosen
