"""What CI systems read from a run: a JUnit XML file (every stage and every gate a test case), a
Markdown summary (for `$GITHUB_STEP_SUMMARY` or a merge-request note) and a JSON summary.

All three are built from one `RunOutcome`: the manifest of the run, which stages this run
finished and how it ended. Nothing here measures; numbers come from the manifest and bench.json.
"""

from __future__ import annotations

import datetime as dt
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from compress import artifacts
from compress.errors import CompressError

PASSED, GATES_FAILED, ERROR, INTERRUPTED = "passed", "gates_failed", "error", "interrupted"
EXIT_CODES = {PASSED: 0, GATES_FAILED: 1, ERROR: 2, INTERRUPTED: 130}


@dataclass
class RunOutcome:
    """How a `compress run` ended, as the CI reports describe it.

    `finished` maps each stage id this run got through to "ran" or "cached"; `failed_stage` is
    the stage that was running when `error` happened (None: before the first or after the last
    stage, e.g. while checking the gates).
    """

    pipeline: str
    root: Path
    stages: list[tuple[str, str]]  # (stage id, stage kind) in pipeline order
    has_gates: bool
    manifest: dict = field(default_factory=dict)
    finished: dict[str, str] = field(default_factory=dict)
    status: str = PASSED
    error: str | None = None
    error_type: str | None = None
    failed_stage: str | None = None
    exit_code: int | None = None

    @property
    def code(self) -> int:
        return self.exit_code if self.exit_code is not None else EXIT_CODES[self.status]

    @property
    def gates(self) -> list[dict]:
        return self.manifest.get("gates") or [] if self.status in (PASSED, GATES_FAILED) else []


def outcome_from_folder(root: str | Path) -> RunOutcome:
    """The outcome of the last finished run in `root` (an exported/<pipeline> folder), as its
    manifest records it: how CI showed it when that run ended."""
    from compress.integrity import read_manifest

    root = Path(root)
    manifest = read_manifest(root)
    gates = manifest.get("gates") or []
    stages = [(sid, st.get("stage", "?")) for sid, st in manifest["stages"].items()]
    return RunOutcome(
        pipeline=manifest.get("pipeline", root.name), root=root, stages=stages,
        has_gates=bool(gates), manifest=manifest,
        finished={sid: st.get("status", "ran") for sid, st in manifest["stages"].items()},
        status=GATES_FAILED if any(not g["passed"] for g in gates) else PASSED)


def _bench(o: RunOutcome) -> tuple[str, dict] | None:
    """The last bench stage this run finished, and its bench.json."""
    ids = [sid for sid, kind in o.stages if kind == "bench" and sid in o.finished]
    if not ids:
        return None
    try:
        return ids[-1], artifacts.read_json(o.root / ids[-1] / "bench.json")
    except CompressError:
        return None


def _stage_rows(o: RunOutcome) -> list[dict]:
    rows = []
    entries = o.manifest.get("stages", {})
    for sid, kind in o.stages:
        status = o.finished.get(sid) or ("failed" if sid == o.failed_stage else "not run")
        wall = entries.get(sid, {}).get("wall_time_s") if sid in o.finished else None
        rows.append({"id": sid, "stage": kind, "status": status, "wall_time_s": wall})
    return rows


def _headline(o: RunOutcome) -> str:
    if o.status == INTERRUPTED:
        where = f" in stage `{o.failed_stage}`" if o.failed_stage else ""
        return f"interrupted{where}"
    if o.status == ERROR:
        where = f"stage `{o.failed_stage}` failed" if o.failed_stage else "the run failed"
        return f"{where}: {o.error}"
    failed = [g for g in o.gates if not g["passed"]]
    if failed:
        return (f"{len(failed)} of {len(o.gates)} gate(s) failed: "
                + ", ".join(f"**{g['gate']}**" for g in failed))
    return f"all {len(o.gates)} gate(s) passed" if o.gates else "ran (no gates)"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(o: RunOutcome) -> str:
    """The run for a CI page: result, gate table, the bench summary table, stage statuses."""
    from compress.report.markdown import summary_table

    mark = "✅" if o.status == PASSED else "❌"
    lines = [f"## {mark} compress `{o.pipeline}`: {_cell(_headline(o))}", ""]
    if o.gates:
        lines += ["| gate | wanted | measured | result |", "|---|---|---|---|"]
        lines += [f"| {_cell(g['gate'])} | {_cell(g['wanted'])} | {_cell(g['measured'])} | "
                  f"{'✅ pass' if g['passed'] else '❌ **FAIL**'} |" for g in o.gates]
        lines.append("")
    elif o.has_gates:
        lines += ["Gates: not checked (the run did not finish).", ""]
    bench = _bench(o)
    if bench:
        lines += [f"Models measured by bench `{bench[0]}` (ratios against "
                  f"`{bench[1]['baseline']}`; `*` = Pareto front of accuracy vs latency):", "",
                  summary_table(bench[1]), ""]
    stages = ", ".join(f"`{r['id']}` {r['stage']} {r['status']}"
                       + (f" {r['wall_time_s']:.1f} s" if r["wall_time_s"] and r["status"] == "ran"
                          else "") for r in _stage_rows(o))
    lines += [f"Stages: {stages}.", "", f"Full report: `{o.root / 'report.md'}`.", ""]
    return "\n".join(lines)


def summary_json(o: RunOutcome, files: dict[str, str | None] | None = None) -> dict:
    """Everything a script needs: status, exit code, error, gates, stages, model figures."""
    from compress.report.summary import summary_rows

    bench = _bench(o)
    return {
        "pipeline": o.pipeline,
        "status": o.status,
        "exit_code": o.code,
        "error": o.error,
        "failed_stage": o.failed_stage,
        "gates": [{k: g[k] for k in ("gate", "wanted", "measured", "measured_value", "passed")
                   if k in g} for g in o.gates],
        "stages": _stage_rows(o),
        "bench": bench[0] if bench else None,
        "models": summary_rows(bench[1]) if bench else [],
        "folder": str(o.root),
        "report": str(o.root / "report.md"),
        **(files or {}),
    }


def junit_xml(o: RunOutcome) -> bytes:
    """JUnit XML in the common (Jenkins / GitLab / GitHub actions) dialect: a suite of stage
    cases (error where a stage failed, skipped where none ran) and a suite of gate cases
    (failure where the measured value misses the wanted one)."""
    stamp = dt.datetime.now().isoformat(timespec="seconds")
    suites = ET.Element("testsuites", name=f"compress {o.pipeline}")
    entries = o.manifest.get("stages", {})

    stage_suite = _suite(suites, f"compress.{o.pipeline}.stages", stamp)
    for r in _stage_rows(o):
        wall = r["wall_time_s"] if r["status"] == "ran" and r["wall_time_s"] else 0.0
        case = _case(stage_suite, r["id"], wall)
        if r["status"] == "failed":
            kind = "Interrupted" if o.status == INTERRUPTED else (o.error_type or "Error")
            err = ET.SubElement(case, "error", message=o.error or "failed", type=kind)
            err.text = f"stage '{r['id']}' ({r['stage']}): {o.error}"
        elif r["status"] == "not run":
            ET.SubElement(case, "skipped", message="not run: the run stopped before this stage")
        else:
            metrics = entries.get(r["id"], {}).get("metrics", {})
            # a bench's per-model metrics (`model.setting.p50_ms`, ...) are in its bench.json
            shown = [f"{k}: {v}" for k, v in metrics.items()
                     if "." not in k and not isinstance(v, dict | list)]
            ET.SubElement(case, "system-out").text = "\n".join(
                [f"{r['stage']}, {r['status']}", *shown])
    if o.status in (ERROR, INTERRUPTED) and o.failed_stage is None:
        case = _case(stage_suite, "pipeline", 0.0)
        ET.SubElement(case, "error", message=o.error or o.status,
                      type=o.error_type or "Error").text = o.error or o.status

    if o.has_gates or o.gates:
        gate_suite = _suite(suites, f"compress.{o.pipeline}.gates", stamp)
        for g in o.gates:
            case = _case(gate_suite, g["gate"], 0.0)
            detail = f"gate: {g['gate']}\nwanted: {g['wanted']}\nmeasured: {g['measured']}"
            if not g["passed"]:
                ET.SubElement(case, "failure", type="GateFailed",
                              message=f"measured {g['measured']}, wanted {g['wanted']}"
                              ).text = detail
            ET.SubElement(case, "system-out").text = detail
        if not o.gates:
            case = _case(gate_suite, "gates", 0.0)
            ET.SubElement(case, "skipped", message="not checked: the run did not finish")

    for suite in suites:
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        for tag, child in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            suite.set(tag, str(sum(1 for c in cases if c.find(child) is not None)))
        suite.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
    for tag in ("tests", "failures", "errors", "skipped"):
        suites.set(tag, str(sum(int(s.get(tag)) for s in suites)))
    suites.set("time", f"{sum(float(s.get('time')) for s in suites):.3f}")
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def _suite(parent: ET.Element, name: str, stamp: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=name, timestamp=stamp,
                         hostname=socket.gethostname())


def _case(suite: ET.Element, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", name=name, classname=suite.get("name"),
                         time=f"{seconds:.3f}")


def write_junit(path: str | Path, o: RunOutcome) -> None:
    with artifacts.atomic_path(path) as tmp:
        tmp.write_bytes(junit_xml(o))


def append_markdown(path: str | Path, text: str) -> None:
    """Append `text` to the file at `path` (created if missing), as GitHub's
    `$GITHUB_STEP_SUMMARY` expects, so several steps or runs can share one page. The new
    content is written beside the file and renamed over it: never half-written."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a pipe or /dev/stdout: plain append
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        return
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    sep = "\n" if old and not old.endswith("\n\n") else ""
    artifacts.write_text(path, old + sep + text)


def compare_markdown(result: dict) -> str:
    """`compress compare` for people: one row per model, baseline -> candidate and the change;
    then the checks on the shipped model and how latency was measured."""
    from compress.report.units import fmt_bytes, fmt_energy, fmt_ms

    def change(v: float | None, unit: str) -> str:
        return "" if v is None else f" ({v:+.1f}{unit})"

    checks = result["checks"]
    failed = [c for c in checks if not c["passed"]]
    if not checks:
        verdict = "no thresholds given"
    elif failed:
        verdict = f"{len(failed)} of {len(checks)} check(s) failed"
    else:
        verdict = f"all {len(checks)} check(s) passed"
    base, cand = result["pipelines"]
    lines = [f"## {'❌' if failed else '✅'} compress compare: `{base}` (baseline, "
             f"`{result['baseline']}`) vs `{cand}` (candidate, `{result['candidate']}`): "
             f"{verdict}", ""]
    head = ["model", "test acc", "size"]
    head += [f"p50 batch {b} (re-measured)" for b in result["batch_sizes"]]
    head += ["energy / inference (as benched)"]
    fidelity = any(any(v is not None for v in r.get("attribution_spearman", []))
                   for r in result["models"])
    head += ["attribution Spearman vs teacher (explain)"] if fidelity else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["models"]:
        b, c = r["baseline_model"], r["candidate_model"]
        name = f"`{c}`" if b == c else f"`{b}` -> `{c}`"
        cells = [name + (" (shipped)" if r["shipped"] else ""),
                 f"{r['accuracy_pct'][0]:.2f} % -> {r['accuracy_pct'][1]:.2f} %"
                 + change(r["accuracy_change_pts"], " pts"),
                 f"{fmt_bytes(r['size_bytes'][0])} -> {fmt_bytes(r['size_bytes'][1])}"
                 + change(r["size_change_pct"], " %")]
        for batch in result["batch_sizes"]:
            lat = r["latency"].get(str(batch))
            cells.append(f"{fmt_ms(lat['baseline_p50_ms'])} -> {fmt_ms(lat['candidate_p50_ms'])}"
                         + change(lat["change_pct"], " %") if lat else "-")
        e = r["energy_mj_per_inference"]
        cells.append(f"{fmt_energy(e[0])} -> {fmt_energy(e[1])}"
                     + change(r["energy_change_pct"], " %") if e[0] and e[1] else "-")
        if fidelity:
            f = r.get("attribution_spearman", [None, None])
            cells.append(" -> ".join("-" if v is None else f"{v:.3f}" for v in f))
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    if checks:
        lines += ["", "| check | wanted | measured | result |", "|---|---|---|---|"]
        lines += [f"| {_cell(c['gate'])} | {c['wanted']} | {c['measured']} | "
                  f"{'✅ pass' if c['passed'] else '❌ **FAIL**'} |" for c in checks]
    cpu = result.get("cpu", {})
    lines += ["", f"How: {result['method']}. CPU: {cpu.get('cpu_model', '?')} "
              f"({cpu.get('logical_cores', '?')} logical cores).", ""]
    return "\n".join(lines)
