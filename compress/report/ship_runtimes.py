"""The file to ship per runtime, from a bench's runtime table (`runtimes:`): for onnxruntime the
run's own ship choice; for every other runtime the fastest model on that runtime's
accuracy-latency Pareto front (as measured in it, at its smallest batch size) that is at least
as accurate there as the onnxruntime choice is in onnxruntime: the rule the ship choice uses
without gates. Also `model.json` at the top of the output folder: the shipped model's contract
(input, preprocessing, labels; what examples/web reads) with that table."""

from __future__ import annotations

from pathlib import Path

from compress import artifacts

CONTRACT_KEYS = ("input", "output", "preprocessing", "class_labels", "metrics", "min_onnxruntime")


def _runtime_bench(root: Path, manifest: dict) -> tuple[str, dict] | None:
    """(id, bench.json) of the last bench stage that measured a runtime table."""
    from compress.errors import CompressError

    for sid, st in reversed(list(manifest["stages"].items())):
        if st.get("stage") != "bench":
            continue
        try:
            bench = artifacts.read_json(root / sid / "bench.json")
        except CompressError:
            continue
        if bench.get("runtimes"):
            return sid, bench
    return None


def _p50(rec: dict) -> tuple[int, float] | None:
    lat = sorted((v["batch_size"], v["p50_ms"]) for v in rec.get("latency", {}).values())
    return lat[0] if lat else None


def runtime_ships(root: Path, manifest: dict, index: list[dict]) -> dict | None:
    """{"bench", "rows": [{runtime, stage, path, batch_size, p50_ms, accuracy_pct, agree,
    samples, why}]}; None when no bench measured other runtimes."""
    from compress.report.summary import pareto_front

    found = _runtime_bench(root, manifest)
    ship = next((a for a in index if a["ship"]), None)
    if found is None or ship is None:
        return None
    bid, bench = found
    table = bench["runtimes"]
    paths = {a["stage"]: a["path"] for a in index if a["format"] == "onnx"}
    ort_ship = ship["stage"]
    ort_acc = (table["models"].get(ort_ship, {}).get("onnxruntime") or {}).get(
        "accuracy_pct", ship["test_accuracy_pct"])
    rows = []
    for runtime, info in table["runtimes"].items():
        if info["status"] != "measured":
            rows.append({"runtime": runtime, "stage": None,
                         "why": f"{info['status']}: {info['why']} ({info['install']})"})
            continue
        recs = {m: per[runtime] for m, per in table["models"].items()
                if m in paths and per.get(runtime, {}).get("loaded") and _p50(per[runtime])}
        if not recs:
            rows.append({"runtime": runtime, "stage": None,
                         "why": f"no model of this run loads in {runtime}"})
            continue
        # one batch size for every model: the smallest all of them were timed at
        batch = max(_p50(r)[0] for r in recs.values())
        points = {m: (next(v["p50_ms"] for v in r["latency"].values()
                           if v["batch_size"] == batch), r["accuracy_pct"])
                  for m, r in recs.items() if any(v["batch_size"] == batch
                                                  for v in r["latency"].values())}
        front = pareto_front(points)
        if runtime == "onnxruntime" and ort_ship in points:
            pick, why = ort_ship, "the run's ship choice (manifest.json `ship_why`)"
        else:
            fine = [m for m in front if points[m][1] >= ort_acc]
            pick = fine[0] if fine else max(front, key=lambda m: points[m][1])
            why = (f"fastest on {runtime}'s accuracy-latency Pareto front ({', '.join(front)}) "
                   f"at least as accurate as `{ort_ship}` in onnxruntime ({ort_acc:.2f} %)"
                   if fine else f"no model on {runtime}'s front is as accurate as `{ort_ship}` "
                   f"in onnxruntime; the most accurate on the front")
        not_loading = sorted(m for m, per in table["models"].items()
                             if m in paths and not per.get(runtime, {}).get("loaded", True))
        if not_loading:
            why += "; does not load: " + ", ".join(
                f"`{m}` ({table['models'][m][runtime].get('unsupported_op') or 'error'})"
                for m in not_loading)
        rec = recs[pick]
        rows.append({"runtime": runtime, "version": info.get("version"), "stage": pick,
                     "path": paths[pick], "batch_size": batch, "p50_ms": points[pick][0],
                     "accuracy_pct": rec["accuracy_pct"], "agree": rec["agree"],
                     "samples": rec["samples"], "why": why})
    return {"bench": bid, "rows": rows}


def ship_table(ships: dict | None) -> list[str]:
    """The README's section; [] without a runtime table."""
    if not ships:
        return []
    lines = ["## Which file to ship, per runtime", "",
             f"Measured by bench `{ships['bench']}` (its runtime table; onnxruntime-web: WASM, "
             "1 thread, in Node.js).", "",
             "| runtime | file to ship | p50 | test accuracy there | agrees with onnxruntime | "
             "why |", "|---|---|---|---|---|---|"]
    for r in ships["rows"]:
        if r["stage"] is None:
            lines.append(f"| {r['runtime']} | - | - | - | - | {r['why']} |")
            continue
        lines.append(f"| {r['runtime']} {r.get('version') or ''} | `{r['path']}` | "
                     f"{r['p50_ms']:.3g} ms at batch {r['batch_size']} | "
                     f"{r['accuracy_pct']:.2f} % | {r['agree']}/{r['samples']} | {r['why']} |")
    return lines + [""]


def write_model_json(root: Path, manifest: dict, index: list[dict], ships: dict | None) -> bool:
    """`model.json` at the top of the folder: the shipped model's contract (its own model.json)
    and the file to ship per runtime. False when no model is shipped."""
    from compress.errors import CompressError
    from compress.measure.ort import read_metadata

    ship = next((a for a in index if a["ship"]), None)
    if ship is None:
        return False
    try:
        if ship.get("contract"):
            contract = artifacts.read_json(root / ship["contract"])
        else:  # an imported model has no model.json of its own: its metadata_props say it
            meta = read_metadata(root / ship["path"])
            contract = {k: meta.get(f"compress.{k}") for k in CONTRACT_KEYS}
    except CompressError:
        return False
    artifacts.write_json(root / "model.json", {
        "pipeline": manifest["pipeline"], "ship": ship["path"], "sha256": ship["sha256"],
        **{k: contract.get(k) for k in CONTRACT_KEYS},
        "runtimes": (ships or {}).get("rows", []),
    })
    return True
