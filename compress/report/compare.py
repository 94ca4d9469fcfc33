"""Compare two runs of a pipeline (two `exported/<pipeline>` folders, e.g. main's artifacts and
a branch's): accuracy, size and energy as each run's bench measured them, latency of both
re-measured here, in one process, interleaved, so that a noisy CI runner hits both alike.

Models are matched by bench model id; the shipped model (the last of each bench's `models`,
which the gates call the candidate) is compared even when its id changed. Thresholds apply to
the shipped model and make `compress compare` exit 1 when it regresses beyond them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from compress import artifacts
from compress.errors import ArtifactError, ConfigError
from compress.renames import renamed_fields


class CompareConfig(BaseModel):
    """How `compress compare` measures, and the regressions it tolerates (None: not checked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _renamed = renamed_fields("compare", {"max_accuracy_drop_pts": "max_accuracy_regression_pts"})

    max_latency_regression_pct: float | None = Field(
        None, ge=0, description="fail if the shipped model's p50 grows by more (any batch size)")
    max_accuracy_regression_pts: float | None = Field(
        None, ge=0, description="fail if the shipped model's test accuracy drops by more from "
        "the baseline run to the candidate run (was `max_accuracy_drop_pts`)")
    max_size_increase_pct: float | None = Field(
        None, ge=0, description="fail if the shipped model's file grows by more")
    max_energy_increase_pct: float | None = Field(
        None, ge=0, description="fail if the shipped model's energy per inference (as each "
        "bench measured it, by the same method) grows by more")
    models: list[str] = Field(default_factory=list,
                              description="bench model ids to compare (default: all in common)")
    batch_sizes: list[int] = Field(default_factory=list, description="default: the baseline "
                                   "bench's smallest and largest")
    threads: int | None = Field(None, ge=0, description="intra-op threads (0 = all cores); "
                                "default: 1 if the baseline bench measured it")
    warmup_runs: int = Field(20, ge=0, description="untimed runs per model and batch size")
    min_runs: int = Field(200, ge=1, description="timed runs per model and batch size")
    min_time_s: float = Field(2.0, ge=0, description="measured seconds per model, at least")
    max_time_s: float = Field(120.0, gt=0, description="wall-time cap per batch size")


@dataclass
class Side:
    """One run: its folder, manifest, last bench (id and bench.json) and shipped model."""

    name: str  # "baseline" or "candidate"
    root: Path
    manifest: dict
    bench_id: str
    bench: dict
    shipped: str

    def model_path(self, model: str) -> Path | None:
        """The ONNX file the bench measured as `model`, inside this folder (None: not ONNX)."""
        rec = self.bench["models"][model]
        if rec.get("runtime", "onnxruntime") != "onnxruntime":
            return None
        entry = self.manifest["stages"].get(model)
        if entry and str(entry.get("primary", "")).endswith(".onnx"):
            path = artifacts.path_inside(self.root, entry["primary"])
        else:  # a peer: bench.json records it relative to the bench folder
            path = artifacts.path_inside(self.root / self.bench_id, rec.get("path", ""))
        if path is None or not path.is_file():
            raise ArtifactError(f"compress compare: {self.name} {self.root}: the ONNX model of "
                                f"'{model}' is missing ({path}); rerun that pipeline")
        if rec.get("sha256") and artifacts.sha256_file(path) != rec["sha256"]:
            raise ArtifactError(f"compress compare: {self.name} {path}: changed since its bench "
                                "measured it; rerun that pipeline")
        return path


def load_side(folder: str | Path, name: str) -> Side:
    """A run folder as compare reads it; ConfigError / ArtifactError (exit 2) if it is none."""
    from compress.integrity import read_manifest

    root = Path(folder)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise ConfigError(f"compress compare: {name} {root} {what}; give a run's folder, e.g. "
                          "exported/<pipeline>")
    manifest = read_manifest(root)
    benches = [sid for sid, st in manifest["stages"].items()
               if isinstance(st, dict) and st.get("stage") == "bench"]
    if not benches:
        raise ConfigError(f"compress compare: {name} {root}: the run has no bench stage; add "
                          "one to the pipeline so there is something to compare")
    bench_id = benches[-1]
    bench = artifacts.read_json(root / bench_id / "bench.json")
    if not isinstance(bench, dict) or not isinstance(bench.get("models"), dict):
        raise ArtifactError(f"compress compare: {root / bench_id / 'bench.json'}: not a bench "
                            "result; rerun that pipeline")
    listed = manifest["stages"][bench_id].get("config", {}).get("models") or list(bench["models"])
    return Side(name, root, manifest, bench_id, bench, listed[-1])


def model_pairs(base: Side, cand: Side, only: list[str]) -> list[tuple[str, str, str]]:
    """(row label, baseline model, candidate model): the shipped pair first, then the models
    both benches measured."""
    pairs = [("shipped", base.shipped, cand.shipped)]
    pairs += [(m, m, m) for m in base.bench["models"]
              if m in cand.bench["models"] and (m, m) != (base.shipped, cand.shipped)]
    if only:
        unknown = [m for m in only if not any(m in (b, c) for _, b, c in pairs)]
        if unknown:
            raise ConfigError(f"compress compare: option --models: '{unknown[0]}' is not in both "
                              f"runs (compared: {', '.join(sorted({b for _, b, _ in pairs}))})")
        pairs = [p for p in pairs if p[1] in only or p[2] in only]
    return pairs


def _settings(base: Side, cfg: CompareConfig) -> tuple[list[int], int]:
    from compress.report.summary import headline_settings

    small, large = headline_settings(base.bench)
    threads = cfg.threads if cfg.threads is not None else int(small.split("_t")[1])
    batches = list(cfg.batch_sizes) or sorted({int(s.split("_")[0][1:]) for s in (small, large)})
    return batches, threads


def _inputs(side: Side):
    """Test inputs of the side's data (the latency inputs are real samples, as in bench)."""
    from pydantic import TypeAdapter

    from compress.data import DataConfig, load_dataset
    from compress.report.consumer import manifest_data_spec

    spec = manifest_data_spec(side.manifest)
    try:
        return load_dataset(TypeAdapter(DataConfig).validate_python(spec)).x_test
    except Exception as e:
        raise ConfigError(f"compress compare: {side.name} {side.root}: cannot load its data "
                          f"({spec}): {str(e).splitlines()[0][:200]}") from e


def measure_latency(base: Side, cand: Side, pairs, cfg: CompareConfig) -> dict:
    """p50 (and more) of every compared ONNX model of both runs, per batch size, measured in
    one interleaved loop: {(side name, model): {batch: LatencyStats}}."""
    import functools

    from compress.measure.latency import measure_callables
    from compress.measure.ort import batch_of, check_input_shape, make_session

    batches, threads = _settings(base, cfg)
    x = {s.name: _inputs(s) for s in (base, cand)}
    sessions = {}
    for _, b, c in pairs:
        for side, model in ((base, b), (cand, c)):
            path = side.model_path(model)
            if path is not None and (side.name, model) not in sessions:
                sess = make_session(path, threads)
                check_input_shape(sess, list(x[side.name].shape[1:]), path)
                sessions[(side.name, model)] = sess
    out: dict = {k: {} for k in sessions}
    for batch in batches:
        calls = {}
        for (name, model), sess in sessions.items():
            feed = {sess.get_inputs()[0].name: batch_of(x[name], batch)}
            calls[f"{name}:{model}"] = functools.partial(sess.run, None, feed)
        stats = measure_callables(calls, cfg.warmup_runs, cfg.min_runs, cfg.min_time_s,
                                  cfg.max_time_s)
        for key, st in stats.items():
            name, model = key.split(":", 1)
            out[(name, model)][batch] = st
    return {"batches": batches, "threads": threads, "stats": out}


def _energy(side: Side, model: str) -> dict | None:
    energy = side.bench["models"][model].get("energy") or {}
    return next(iter(energy.values()), None)


def _fidelity(side: Side, model: str) -> float | None:
    """The model's attribution Spearman against the teacher, from the run's last explain stage
    (None when the run has none or it did not explain that model)."""
    explains = [st for st in side.manifest["stages"].values()
                if isinstance(st, dict) and st.get("stage") == "explain"]
    return explains[-1].get("metrics", {}).get(f"{model}.spearman") if explains else None


def _pct(new: float | None, old: float | None) -> float | None:
    return None if new is None or not old else (new / old - 1) * 100


def compare_runs(baseline: str | Path, candidate: str | Path, cfg: CompareConfig) -> dict:
    """Everything `compress compare` reports: per-model rows, the checks and whether all pass."""
    from compress.measure.system import cpu_info

    base, cand = load_side(baseline, "baseline"), load_side(candidate, "candidate")
    pairs = model_pairs(base, cand, list(cfg.models))
    _precheck(base, cand, pairs[0], cfg)
    lat = measure_latency(base, cand, pairs, cfg)
    rows = []
    for label, b, c in pairs:
        rb, rc = base.bench["models"][b], cand.bench["models"][c]
        eb, ec = _energy(base, b), _energy(cand, c)
        same_method = bool(eb and ec and eb["method"] == ec["method"])
        latency = {}
        for batch in lat["batches"]:
            sb = lat["stats"].get(("baseline", b), {}).get(batch)
            sc = lat["stats"].get(("candidate", c), {}).get(batch)
            if sb and sc:
                latency[str(batch)] = {
                    "baseline_p50_ms": sb.p50_ms, "candidate_p50_ms": sc.p50_ms,
                    "baseline_runs": sb.runs, "candidate_runs": sc.runs,
                    "change_pct": _pct(sc.p50_ms, sb.p50_ms)}
        rows.append({
            "row": label, "shipped": label == "shipped", "baseline_model": b,
            "candidate_model": c,
            "accuracy_pct": [rb["accuracy_pct"], rc["accuracy_pct"]],
            "accuracy_change_pts": rc["accuracy_pct"] - rb["accuracy_pct"],
            "size_bytes": [rb["size_bytes"], rc["size_bytes"]],
            "size_change_pct": _pct(rc["size_bytes"], rb["size_bytes"]),
            "latency": latency,
            "energy_mj_per_inference": [eb and eb["mj_per_inference"],
                                        ec and ec["mj_per_inference"]],
            "energy_method": [eb and eb["label"], ec and ec["label"]],
            "energy_change_pct": _pct(ec["mj_per_inference"], eb["mj_per_inference"])
            if same_method else None,
            "attribution_spearman": [_fidelity(base, b), _fidelity(cand, c)],
        })
    checks = _checks(rows[0], cfg)
    return {
        "baseline": str(base.root), "candidate": str(cand.root),
        "pipelines": [base.manifest.get("pipeline"), cand.manifest.get("pipeline")],
        "batch_sizes": lat["batches"], "threads": lat["threads"],
        "method": (f"latency re-measured in one process: both runs' models interleaved in "
                   f"chunks of 10 runs, {cfg.warmup_runs} warm-up runs, then until each has >= "
                   f"{cfg.min_runs} runs and >= {cfg.min_time_s:g} s, {lat['threads']} "
                   "intra-op thread(s) (0 = all cores), on real test inputs; accuracy, size and "
                   "energy as each run's bench measured them"),
        "cpu": cpu_info(), "models": rows, "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }


def _who(b: str, c: str) -> str:
    return c if b == c else f"{b} -> {c}"


def _precheck(base: Side, cand: Side, shipped: tuple[str, str, str], cfg: CompareConfig) -> None:
    """Thresholds that cannot be checked are refused before anything is measured."""
    _, b, c = shipped
    if cfg.max_latency_regression_pct is not None and (
            base.model_path(b) is None or cand.model_path(c) is None):
        raise ConfigError(f"compress compare: option --max-latency-regression-pct: {_who(b, c)} "
                          "is not an ONNX model in both runs, so its latency is not measured")
    eb, ec = _energy(base, b), _energy(cand, c)
    if cfg.max_energy_increase_pct is not None and not (eb and ec and
                                                        eb["method"] == ec["method"]):
        methods = " vs ".join(str(e and e["label"]) for e in (eb, ec))
        raise ConfigError("compress compare: option --max-energy-increase-pct: the energy of "
                          f"{_who(b, c)} is missing or measured by different methods "
                          f"({methods}); drop the option")


def _checks(row: dict, cfg: CompareConfig) -> list[dict]:
    """The thresholds, on the shipped model, as gate results ({gate, wanted, measured, ...})."""
    who = _who(row["baseline_model"], row["candidate_model"])
    out = []

    def add(gate: str, limit: float, value: float, unit: str) -> None:
        out.append({"gate": f"{gate} of {who}", "wanted": f"<= {limit:g}{unit}",
                    "measured": f"{value + 0.0:+.2f}{unit}", "measured_value": value,
                    "passed": value <= limit})

    if cfg.max_accuracy_regression_pts is not None:
        add("accuracy drop", cfg.max_accuracy_regression_pts, -row["accuracy_change_pts"], " pts")
    if cfg.max_size_increase_pct is not None:
        add("size increase", cfg.max_size_increase_pct, row["size_change_pct"], " %")
    if cfg.max_latency_regression_pct is not None:
        for batch, lat in row["latency"].items():
            add(f"p50 latency increase (batch {batch})", cfg.max_latency_regression_pct,
                lat["change_pct"], " %")
    if cfg.max_energy_increase_pct is not None:
        add("energy increase", cfg.max_energy_increase_pct, row["energy_change_pct"], " %")
    return out
