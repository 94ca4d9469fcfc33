"""What a downstream app needs from a pipeline's output folder, written when every run finishes
(cached or not): `README.md` (which file to ship, its inputs and outputs, how to preprocess,
expected accuracy and latency, the oldest onnxruntime that loads it, how to run the example)
and `test_data.npz` (the raw held-out test split, for examples/classify.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress import artifacts
from compress.onnx.external import combine_sha256

MODEL_KINDS = {".onnx": "onnx", ".ort": "ort"}
TEST_DATA = "test_data.npz"
CONTRACT = "model.json"  # compress.onnx.contract.CONTRACT_JSON (report imports no onnx tools)


def default_ship(cfg) -> str | None:
    """The gates' candidate when it is a stage of the pipeline, else the last quantize/qat
    stage, else the last export: the model the pipeline was written to produce."""
    from compress.gates import gate_bench

    kinds = {s.id: s.stage for s in cfg.stages}
    if cfg.gates is not None:
        bench = gate_bench(cfg.stages, cfg.gates)
        candidate = cfg.gates.candidate or (bench.models[-1] if bench else None)
        if candidate in kinds:
            return candidate
    for wanted in (("quantize", "qat"), ("export",)):
        found = [s.id for s in cfg.stages if s.stage in wanted]
        if found:
            return found[-1]
    return None


def ship_choice(cfg, manifest: dict, root: Path) -> tuple[str | None, str]:
    """(stage whose model to ship, why): the fastest model on the bench's accuracy-latency
    Pareto front that meets every gate judging it; without gates, the fastest on the front that
    is at least as accurate as the pipeline's intended model. A slower int8 model dominated by
    its own fp32 export is therefore not shipped. Falls back to `default_ship` (saying so)."""
    from compress.errors import CompressError
    from compress.gates import evaluate_gates, gate_bench
    from compress.report.summary import headline_settings, pareto_front

    default = default_ship(cfg)
    benches = [s for s in cfg.stages if s.stage == "bench"]
    bench = gate_bench(cfg.stages, cfg.gates) if cfg.gates is not None else (
        benches[-1] if benches else None)
    if default is None or bench is None:
        return default, "the gates' candidate, else the last quantized model (no bench ran)"
    try:
        measured = artifacts.read_json(root / bench.id / "bench.json")["models"]
    except (CompressError, KeyError):
        return default, f"the gates' candidate, else the last quantized model ({bench.id} unread)"
    g = cfg.gates
    setting = f"b{g.batch_size}_t{g.threads}" if g is not None else headline_settings(
        {"models": measured, "baseline": next(iter(measured))})[0]
    shippable = {sid for sid, st in manifest["stages"].items()
                 if Path(st.get("primary", "")).suffix in MODEL_KINDS}
    points = {m: (v["latency"][setting]["p50_ms"], v["accuracy_pct"])
              for m, v in measured.items() if m in shippable and setting in v.get("latency", {})}
    if default not in points:
        return default, f"the gates' candidate, else the last quantized model (not in {bench.id})"
    front = pareto_front(points)

    def meets(m: str) -> bool:
        if g is None:
            return points[m][1] >= points[default][1]
        return all(r["passed"] for r in evaluate_gates(cfg, manifest, root, candidate=m)
                   if m in r.get("models", []))

    fine = [m for m in front if meets(m)]
    where = f"measured by `{bench.id}` at {setting}"
    if not fine:
        return default, (f"no model on the accuracy-latency Pareto front ({', '.join(front)}; "
                         f"{where}) meets the gates, so the gates' candidate is shipped")
    ship = fine[0]  # the front is sorted fastest first
    rule = "meets every gate judging it" if g is not None else \
        f"is at least as accurate as `{default}`"
    why = (f"the fastest model on the accuracy-latency Pareto front ({', '.join(front)}; "
           f"{where}) that {rule}")
    if ship != default:
        lat_d, lat_s = points[default][0], points[ship][0]
        if default not in front:
            by = [m for m in points if m != default and points[m][0] <= lat_d
                  and points[m][1] >= points[default][1]]
            reason = f"dominated by {', '.join(by)} (as fast or faster, as accurate or more)"
        else:
            reason = "it is slower"
        size_d, size_s = measured[default]["size_bytes"], measured[ship]["size_bytes"]
        if size_d > size_s:  # int8 of a small model can be the larger file
            reason += f", and larger ({size_d:,} vs {size_s:,} bytes)"
        why += f"; not `{default}`: {reason}; p50 {lat_d:.4g} ms vs {lat_s:.4g} ms for `{ship}`"
    return ship, why


def artifact_index(root: Path, manifest: dict) -> list[dict]:
    """Every model file the run produced: path, stage, sha256, size, its own test accuracy and
    the oldest onnxruntime that loads it (from the file's metadata)."""
    from compress.errors import CompressError
    from compress.measure.ort import read_metadata

    out = []
    for sid, st in manifest["stages"].items():
        primary = st.get("primary", "")
        kind = MODEL_KINDS.get(Path(primary).suffix)
        rec = st.get("outputs", {}).get(primary)
        if kind is None or not rec:
            continue
        files = _model_files(root, primary, st.get("outputs", {}))
        metrics = st.get("metrics", {})
        acc = metrics.get("test_accuracy_pct", metrics.get("ort_test_accuracy_pct"))
        min_ort = None
        if kind == "onnx":
            try:
                min_ort = read_metadata(root / primary).get("compress.min_onnxruntime")
            except CompressError:
                min_ort = None
        else:
            from compress.onnx.inspection import inspect_file

            min_ort = inspect_file(root / primary)["min_onnxruntime"]
        contract = (Path(primary).parent / CONTRACT).as_posix()
        contract_rec = st.get("outputs", {}).get(contract)
        out.append({"path": primary, "stage": sid, "stage_kind": st.get("stage"), "format": kind,
                    "contract": contract if contract_rec else None,
                    "contract_sha256": (contract_rec or {}).get("sha256"),
                    # of the model's files together (.onnx + external weights): see `files`
                    "sha256": combine_sha256([(Path(f["path"]).name, f["sha256"]) for f in files]),
                    "size_bytes": sum(f["size_bytes"] for f in files), "files": files,
                    "test_accuracy_pct": acc,
                    "min_onnxruntime": (min_ort or {}).get("version"),
                    "ship": sid == manifest.get("ship")})
    return out


def manifest_data_spec(manifest: dict) -> dict:
    """The manifest's data spec with a user file's path (stored relative to the pipeline file)
    made loadable again."""
    from compress.data import locate_spec

    source = manifest.get("config_file") or ""
    base = Path(source).parent if source and Path(source).is_file() else None
    return locate_spec(manifest.get("data") or {}, base)


def _model_files(root: Path, primary: str, outputs: dict) -> list[dict]:
    """The model file and its external weights files, as the manifest records them."""
    from compress.errors import CompressError
    from compress.onnx.external import external_files

    try:
        extra = [p.relative_to(root).as_posix() for p in external_files(root / primary)]
    except CompressError:
        extra = []  # a damaged folder: `compress verify` says what is missing
    return [{"path": rel, **{k: outputs[rel][k] for k in ("sha256", "size_bytes")}}
            for rel in [primary, *extra] if rel in outputs]


def write_test_data(root: Path, data_spec: dict) -> dict | None:
    """`test_data.npz`: x (raw, model layout), y, class_labels; None if the data cannot load."""
    from pydantic import TypeAdapter, ValidationError

    from compress.data import DataConfig, load_dataset, raw_test_split
    from compress.errors import CompressError

    try:
        cfg = TypeAdapter(DataConfig).validate_python(data_spec)
        x, y = raw_test_split(cfg)
        labels = load_dataset(cfg).class_labels
    except (ValidationError, CompressError, OSError):
        return None
    with artifacts.atomic_path(root / TEST_DATA) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, x=x, y=y, class_labels=np.array(labels))
    return {"samples": int(len(y)), "x_shape": list(x.shape), "x_dtype": str(x.dtype)}


def _latency(root: Path, manifest: dict, model: str) -> str:
    """'p50 X ms at batch 1, Y ms at batch N (1 thread, CPU)' from the last bench measuring it."""
    from compress.errors import CompressError

    for sid, st in reversed(list(manifest["stages"].items())):
        if st.get("stage") != "bench":
            continue
        try:
            bench = artifacts.read_json(root / sid / "bench.json")
        except CompressError:
            continue
        lat = bench.get("models", {}).get(model, {}).get("latency", {})
        t1 = {v["batch_size"]: v["p50_ms"] for k, v in lat.items() if v.get("threads") == 1}
        if not t1:
            continue
        cpu = bench.get("cpu", {})
        parts = ", ".join(f"{ms:.3g} ms at batch {b}" for b, ms in sorted(t1.items()))
        isa = ", ".join(cpu.get("isa", [])) or "no listed ISA extensions"
        return (f"p50 {parts}, 1 intra-op thread, measured by stage `{sid}` on "
                f"{cpu.get('cpu_model', '?')} ({isa}); int8 speed depends on those ISA flags")
    return "not measured (the pipeline has no bench stage measuring it)"


def _files_to_ship(ship: dict) -> list[str]:
    files = ship.get("files") or []
    if len(files) < 2:
        return []
    return ["Files to ship, together in one folder (the .onnx names its weights file, which "
            "onnxruntime looks for beside it):", "",
            *[f"- `{f['path']}`: {f['size_bytes']:,} bytes, sha256 `{f['sha256']}`"
              for f in files],
            "", "(the sha256 above is of these files together: sha256 of the lines "
            "`<file name> <sha256>`, the .onnx first)", ""]


def consumer_readme(root: Path, manifest: dict, index: list[dict], test_data: dict | None,
                    ships: dict | None = None) -> str:
    from compress.measure.ort import read_metadata
    from compress.report.ship_runtimes import ship_table

    name = manifest["pipeline"]
    ship = next((a for a in index if a["ship"]), None)
    lines = [f"# `{name}`: the model to ship", "",
             "Generated from `manifest.json` by `compress run` (and `compress report`); the run "
             f"finished {manifest.get('finished_at')} and measured every figure here.", ""]
    if ship is None:
        lines += ["This pipeline produced no ONNX model.", ""]
        return "\n".join(lines)
    meta = read_metadata(root / ship["path"])
    inp, outp = meta.get("compress.input", {}), meta.get("compress.output", {})
    pre = meta.get("compress.preprocessing", {})
    labels = meta.get("compress.class_labels", [])
    edge = [a for a in index if a["format"] == "ort"
            and manifest["stages"][a["stage"]].get("config", {}).get("input") == ship["stage"]]
    failed = [g for g in manifest.get("gates") or [] if not g.get("passed")]
    if failed:
        lines += [f"**The gates failed** ({len(failed)} of {len(manifest['gates'])}); what "
                  "follows describes a model that did not meet them:", ""]
        lines += [f"- {g['gate']}: wanted {g['wanted']}, measured {g['measured']}" for g in failed]
        lines += [""]
    lines += [
        f"**Ship `{ship['path']}`** (stage `{ship['stage']}`, a `{ship['stage_kind']}` stage): "
        f"{ship['size_bytes']:,} bytes, sha256 `{ship['sha256']}`. Why this one: "
        f"{manifest.get('ship_why') or 'the last quantized model'}.",
        "",
        *_files_to_ship(ship),
        f"- oldest onnxruntime that loads it: **{ship['min_onnxruntime']}** "
        f"({(meta.get('compress.min_onnxruntime') or {}).get('why', '?')})",
    ]
    for a in edge:
        lines.append(f"- the same model in ORT format (mobile / reduced builds): `{a['path']}` "
                     f"(needs onnxruntime >= {a['min_onnxruntime']}); operators for a reduced "
                     f"build: `{Path(a['path']).parent}/model.required_operators.config`")
    lines += [
        "",
        *ship_table(ships),
        "## Inputs and outputs",
        "",
        f"- input `{inp.get('name')}`: {inp.get('dtype')} {inp.get('shape')} "
        f"(layout {pre.get('layout')}; the batch axis is dynamic)",
        f"- output `{outp.get('name')}`: {outp.get('shape')}, {outp.get('meaning')}",
        f"- class labels (index -> label): {labels}",
        "",
        "## Preprocessing",
        "",
        f"{pre.get('formula', 'x = (raw - mean[c]) / std[c] per channel c')}, with",
        f"mean = {pre.get('mean')}, std = {pre.get('std')} (from the training split). All of",
        "this is in the model's `metadata_props` (`compress.input`, `compress.preprocessing`,",
        "`compress.class_labels`), so a consumer needs no other file.",
        "",
        "## Expected accuracy and latency",
        "",
        f"- test accuracy: **{ship['test_accuracy_pct']:.2f} %** on "
        f"{(test_data or {}).get('samples', '?')} held-out samples, in onnxruntime on the CPU "
        "(`compress.metrics.test_accuracy_pct` in the file)",
        f"- latency: {_latency(root, manifest, ship['stage'])}",
        "",
        "## Run it",
        "",
        "```",
        f"pip install 'onnxruntime>={ship['min_onnxruntime']}' numpy",
        f"python examples/classify.py {(root / ship['path']).as_posix()}",
        "```",
        "",
        f"`examples/classify.py` needs only onnxruntime and numpy. It reads `{TEST_DATA}` beside "
        "this file (x: the raw test inputs in model layout, y: labels), preprocesses x as the "
        "metadata says, predicts, and compares its accuracy with the one stored in the model. "
        f"Paths are as the run saw them (from where `compress run` was started); `{CONTRACT}` "
        "beside each model holds the same contract as JSON for runtimes that cannot read "
        "`metadata_props` (onnxruntime-node, -web).",
        "",
        "## Every model of this run",
        "",
        "| file | stage | format | size | test accuracy | onnxruntime >= | sha256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in index:
        acc = "-" if a["test_accuracy_pct"] is None else f"{a['test_accuracy_pct']:.2f} %"
        lines.append(f"| `{a['path']}`{' (ship)' if a['ship'] else ''} | {a['stage']} "
                     f"({a['stage_kind']}) | {a['format']} | {a['size_bytes']:,} B | {acc} | "
                     f"{a['min_onnxruntime'] or '?'} | `{a['sha256'][:16]}...` |")
    lines += ["", f"`compress verify {root.as_posix()}` rehashes every file against "
              "`manifest.json`; "
              "`compress inspect FILE` shows any model's opsets, ops, weights and metadata.", ""]
    return "\n".join(lines)


def write_consumer_files(root: Path, manifest: dict) -> list[str]:
    """Write README.md and test_data.npz into a pipeline's output folder; the names written."""
    from compress.data import decode_cache
    from compress.integrity import CACHE

    index = manifest.get("artifacts") or artifact_index(root, manifest)
    with decode_cache(root / CACHE):  # an image folder decoded by the run is not decoded again
        test_data = write_test_data(root, manifest_data_spec(manifest))
    from compress.report.ship_runtimes import runtime_ships, write_model_json

    ships = runtime_ships(root, manifest, index)
    artifacts.write_text(root / "README.md",
                         consumer_readme(root, manifest, index, test_data, ships))
    model_json = write_model_json(root, manifest, index, ships)
    return (["README.md"] + ([TEST_DATA] if test_data else [])
            + ([CONTRACT] if model_json else []))
