"""Stage `bench`: measure models side by side on the CPU: ONNX models in ONNX Runtime and, with
`peers:`, what a user would do without compress (PyTorch eager, ORT's own quantizers).

Consumes ONNX artifacts (and, for peers, the teacher's checkpoint and ONNX); produces
`bench.json` (every number, how it was measured, the CPU and versions it ran on), `bench.md` and
`predictions.npz` (each model's predicted class per test sample): test accuracy with a Wilson
interval and McNemar's test between every two models, file size, parameters, latency p50/p90/p99
with a bootstrap CI for p50 per batch size and thread count, warm and with the caches evicted
(candidates interleaved in one loop), peak memory of a fresh process, and energy per inference
labelled with the method that measured or estimated it.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from compress import artifacts
from compress.measure import ort as ort_measure
from compress.measure.accuracy import ACC_LEVEL, accuracy_record, find_paired, paired_tests
from compress.measure.energy import EnergyConfig, co2e_g_per_million, inference_energy
from compress.measure.latency import (
    CI_LEVEL,
    CI_RESAMPLES,
    EVICT_FACTOR,
    CacheEvictor,
    evict_size,
    measure_callables,
)
from compress.measure.limit import measure_limit, percent_of_limit
from compress.measure.memory import measure_memory
from compress.measure.ort import batch_of
from compress.measure.peers import (
    CAREFUL,
    DYNAMIC,
    LABELS,
    PEER_IDS,
    STATIC,
    TORCH,
    PeersConfig,
)
from compress.measure.runtimes import RUNTIME_NAMES
from compress.measure.runtimes.names import flatten_runtimes, runtime_method, runtime_metric_names
from compress.measure.system import cpu_info, versions
from compress.report.markdown import bench_table
from compress.report.runtimes import runtime_table
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage


class BenchConfig(StageConfig):
    stage: Literal["bench"] = "bench"
    models: list[str] = Field(min_length=1, description="ids of stages that produced ONNX models")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 64], min_length=1)
    threads: list[int] = Field(
        default_factory=lambda: [1], min_length=1, description="intra-op threads; 0 = all cores"
    )
    warmup_runs: int = Field(20, ge=0, description="untimed runs before measuring")
    min_runs: int = Field(200, ge=1, description="timed runs per model and setting, at least")
    min_time_s: float = Field(2.0, ge=0, description="measured seconds per model, at least")
    max_time_s: float = Field(60.0, gt=0, description="wall-time cap per setting")
    cold_runs: int = Field(
        20, ge=0, le=10_000, description="timed calls per model and setting with the CPU caches "
        "evicted before each (cold cache, interleaved with the warm runs); 0 = warm only")
    peers: PeersConfig | None = Field(
        None, description="peer baselines from the teacher: {checkpoint: ID, onnx: ID}")
    memory: bool = Field(True, description="peak RSS of a fresh process per model")
    energy_time_s: float = Field(
        1.0, ge=0, le=600, description="seconds of inference per model and batch size for "
        "energy per inference (longer if the counter needs it); 0 = skip")

    runtimes: list[Literal[RUNTIME_NAMES]] = Field(
        default_factory=lambda: ["onnxruntime"], min_length=1,
        description="runtimes each of `models` is also loaded, checked and timed in: "
        "onnxruntime, openvino (pip install 'compress[openvino]'), onnxruntime-web (Node.js, "
        "WASM, 1 thread; `make ortweb`); a table per model and runtime: loads or why not, "
        "test accuracy, agreement with onnxruntime, p50 per batch size (first thread count)")
    runtime_time_s: float = Field(
        0.5, gt=0, le=60, description="measured seconds per model, runtime and batch size in "
        "the runtime table, at least")

    references = {"models": {"onnx"}, "peers.checkpoint": {"checkpoint"},
                  "peers.onnx": {"onnx"}}
    pipeline_settings = ("energy",)

    @field_validator("batch_sizes", "threads")
    @classmethod
    def _positive(cls, v: list[int], info):
        low = 1 if info.field_name == "batch_sizes" else 0
        if any(x < low for x in v):
            raise ValueError(f"every value must be >= {low}")
        return sorted(set(v), key=v.index)

    @field_validator("models")
    @classmethod
    def _unique(cls, v: list[str]):
        if len(set(v)) != len(v):
            raise ValueError("a model is listed twice")
        return v

    @model_validator(mode="after")
    def _peer_names_free(self):
        if self.peers is not None and set(self.models) & set(PEER_IDS):
            raise ValueError(f"model ids {', '.join(PEER_IDS)} are reserved for peers")
        return self

    def model_ids(self) -> list[str]:
        """Every model the bench measures, in report order: `models`, then the peers."""
        if self.peers is None:
            return list(self.models)
        extra = [] if self.peers.onnx in self.models else [self.peers.onnx]
        return [*self.models, *extra, *PEER_IDS]


@dataclass
class _Candidate:
    """One measured model: its record in bench.json and how to run it."""

    record: dict
    path: Path
    pred: np.ndarray  # predicted class of every test sample
    torch: object = None  # compress.peers.TorchCandidate for the PyTorch eager peer
    sessions: dict = field(default_factory=dict)

    def bind(self, x: np.ndarray, threads: int):
        if self.torch is not None:
            return self.torch.bind(x)
        if threads not in self.sessions:  # one session per thread setting, reused per batch
            self.sessions = {threads: ort_measure.make_session(self.path, threads)}
        session = self.sessions[threads]
        # partial calls session.run from C: no Python frame inside the timed region.
        return functools.partial(session.run, None, {session.get_inputs()[0].name: x})


def _onnx_candidate(path: Path, sha256: str, data, role: str, label: str) -> _Candidate:
    from compress.onnx.external import model_files
    from compress.onnx.inspection import inspect_file
    from compress.onnx.macs import count_macs

    session = ort_measure.make_session(path, threads=0)
    files = model_files(path)
    ort_measure.check_input_shape(session, data.input_shape, path)
    pred = ort_measure.predict(session, data.x_test).argmax(1)
    return _Candidate({
        "label": label, "role": role, "runtime": "onnxruntime", "path": str(path),
        "sha256": sha256, **accuracy_record(pred, data.y_test),
        # the .onnx and its external weights file(s), if any: what an app must ship
        "size_bytes": sum(p.stat().st_size for p in files), "files": [p.name for p in files],
        "params": int(inspect_file(path)["params"]),  # weights, as `compress inspect` counts them
        "latency": {},
        # per sample, by the precision ORT runs them in: what the limit figure divides
        "macs": count_macs(path, list(data.input_shape)),
    }, path, pred)


def _candidates(cfg: BenchConfig, ctx: StageContext, data) -> dict[str, _Candidate]:
    out = {}
    for name in cfg.models:
        art = ctx.inputs[name]
        out[name] = _onnx_candidate(art.path, art.sha256, data, "model", name)
    if cfg.peers is None:
        return out
    from compress.measure.peers import TorchCandidate, check_peer_onnx, quantize_peers
    from compress.models import count_params
    from compress.onnx.contract import set_metadata

    p = cfg.peers
    ckpt, fp32 = ctx.inputs[p.checkpoint], ctx.inputs[p.onnx]
    check_peer_onnx(fp32.path, ckpt.sha256, p.onnx, p.checkpoint)
    if p.onnx not in out:
        out[p.onnx] = _onnx_candidate(fp32.path, fp32.sha256, data, "peer", LABELS["ort_fp32"])
    out[p.onnx].record["peer"] = LABELS["ort_fp32"]

    eager = TorchCandidate(ckpt.path)
    pred = eager.predict(data.x_test).argmax(1)
    out[TORCH] = _Candidate({
        "label": LABELS[TORCH], "role": "peer", "runtime": "torch", "path": str(ckpt.path),
        "sha256": ckpt.sha256, **accuracy_record(pred, data.y_test),
        "size_bytes": ckpt.path.stat().st_size, "size_of": "checkpoint file (torch.save)",
        "params": count_params(eager.model), "latency": {},
        "macs": {"fp32": sum(out[p.onnx].record["macs"].values()), "int8": 0},
    }, ckpt.path, pred, torch=eager)
    seed = getattr(ctx.data_cfg, "seed", 0)
    paths, used = quantize_peers(fp32.path, data.x_train, p.calibration_samples, seed,
                                 ctx.out_dir / "peers", set_metadata)
    for name in (STATIC, CAREFUL, DYNAMIC):
        cand = _onnx_candidate(paths[name], artifacts.sha256_file(paths[name]), data, "peer",
                               LABELS[name])
        # relative: the stage folder is renamed
        cand.record.update(path=f"peers/{paths[name].name}", quantization=used[name])
        out[name] = cand
    return out


MODEL_METRICS = ("accuracy_pct", "accuracy_ci_low_pct", "accuracy_ci_high_pct", "size_bytes",
                 "params")
LATENCY_METRICS = ("p50_ms", "p90_ms", "p99_ms", "runs", "p50_ci_low_ms", "p50_ci_high_ms")
COLD_METRICS = tuple(f"cold_{k}" for k in LATENCY_METRICS)


def setting_name(batch: int, threads: int) -> str:
    return f"b{batch}_t{threads}"


def metric_names(cfg: BenchConfig) -> list[str]:
    """What `flatten_bench` will name, known from the config alone (gates are checked against
    it when the pipeline loads)."""
    settings = [setting_name(b, t) for t in cfg.threads for b in cfg.batch_sizes]
    names = []
    latency = LATENCY_METRICS + (COLD_METRICS if cfg.cold_runs else ())
    for m in cfg.model_ids():
        names += [f"{m}.{k}" for k in MODEL_METRICS]
        if m != cfg.models[0]:
            names.append(f"{m}.accuracy_drop_p_value")
        names += [f"{m}.{s}.{k}" for s in settings for k in (*latency, "pct_of_limit")]
        if cfg.memory:
            names.append(f"{m}.memory_peak_bytes")
        if cfg.energy_time_s > 0:
            names += [f"{m}.{setting_name(b, cfg.threads[0])}.energy_mj_per_inference"
                      for b in cfg.batch_sizes]
            names += [f"{m}.energy_mj_per_inference", f"{m}.co2e_g_per_million"]
    if cfg.runtimes != ["onnxruntime"]:
        names += runtime_metric_names(cfg.models, cfg.runtimes, cfg.batch_sizes, cfg.threads[0])
    return names


def _runtimes(cfg: BenchConfig, cands: dict, data) -> dict | None:
    """The runtime table (measure/runtimes) of the bench's own models; None for ORT alone."""
    if cfg.runtimes == ["onnxruntime"]:
        return None
    from compress.measure.runtimes.compare import compare_runtimes

    timing = {"warmup_runs": min(cfg.warmup_runs, 10), "min_runs": min(cfg.min_runs, 50),
              "min_time_s": cfg.runtime_time_s, "max_time_s": cfg.max_time_s}
    table = compare_runtimes({m: cands[m].path for m in cfg.models}, data.x_test, data.y_test,
                             {m: cands[m].pred for m in cfg.models}, cfg.runtimes,
                             cfg.batch_sizes, cfg.threads[0], timing)
    table["method"] = runtime_method(cfg.runtimes, timing)
    return table


@register_stage(BenchConfig, produces="bench", metrics=metric_names)
def bench(cfg: BenchConfig, ctx: StageContext) -> StageResult:
    data = ctx.dataset()
    energy_cfg = ctx.energy or EnergyConfig()
    cands = _candidates(cfg, ctx, data)
    for name, c in ((n, c) for n, c in cands.items() if c.torch is None):
        ort_measure.check_fixed_batch(c.path, cfg.batch_sizes, f"stage '{ctx.stage_id}', {name}")
    preds = {n: c.pred for n, c in cands.items()}
    torch_peer = next((c.torch for c in cands.values() if c.torch is not None), None)
    evict = CacheEvictor() if cfg.cold_runs else None
    energy: dict = {}
    limits = {}
    for threads in cfg.threads:
        limits[threads] = measure_limit(threads)
        # Torch's thread count is process-wide; it is set once per setting for the torch peer.
        settings = torch_peer.settings(threads) if torch_peer else contextlib.nullcontext()
        with settings:
            for batch in cfg.batch_sizes:
                x = batch_of(data.x_test, batch)
                calls = {n: c.bind(x, threads) for n, c in cands.items()}
                stats = measure_callables(calls, cfg.warmup_runs, cfg.min_runs, cfg.min_time_s,
                                          cfg.max_time_s, cold_runs=cfg.cold_runs, evict=evict)
                for n, st in stats.items():
                    limit = limits[threads].limit_ms(cands[n].record["macs"], batch)
                    cands[n].record["latency"][f"b{batch}_t{threads}"] = {
                        "batch_size": batch, "threads": threads, **st.as_dict(),
                        "limit_ms": round(limit, 6),
                        "pct_of_limit": percent_of_limit(limit, st.p50_ms)}
                if threads == cfg.threads[0] and cfg.energy_time_s > 0:
                    per = inference_energy({n: (f, batch) for n, f in calls.items()},
                                           cfg.energy_time_s, config=energy_cfg)
                    for n, e in per.items():
                        e["co2e_g_per_million"] = co2e_g_per_million(
                            e["joules_per_inference"], energy_cfg.grid_gco2_per_kwh)
                        energy.setdefault(n, {})[f"b{batch}_t{threads}"] = e
        for c in cands.values():
            c.sessions.clear()
    runtimes = _runtimes(cfg, cands, data)
    del evict  # a buffer larger than the caches: not kept while memory is measured
    batches = [batch_of(data.x_test, b) for b in cfg.batch_sizes]
    for n, c in cands.items():
        c.record["energy"] = energy.get(n, {})
        c.record["memory"] = measure_memory(
            c.path, "torch" if c.torch is not None else "ort", batches, cfg.threads[0]
        ) if cfg.memory else None

    models = {n: c.record for n, c in cands.items()}
    result = {
        "models": models,
        "baseline": cfg.models[0],
        "test_samples": len(data.x_test),
        "accuracy_tests": paired_tests(preds, data.y_test),
        "cold_cache": _cold_settings(cfg),
        **({"runtimes": runtimes} if runtimes else {}),
        "limit": {f"t{t}": lim.record() for t, lim in limits.items()},
        "method": _methods(cfg, energy_cfg, models),
        "ort_settings": ort_measure.session_settings(),
        "grid_gco2_per_kwh": energy_cfg.grid_gco2_per_kwh,
        "cpu": cpu_info(),
        "versions": versions(),
    }
    with artifacts.atomic_path(ctx.out_dir / "predictions.npz") as tmp, open(tmp, "wb") as f:
        # "pred.<model id>": ids have no dots, so no model can be named like y_test
        np.savez_compressed(f, y_test=data.y_test, **{f"pred.{n}": p for n, p in preds.items()})
    artifacts.write_json(ctx.out_dir / "bench.json", result)
    artifacts.write_text(ctx.out_dir / "bench.md", bench_table(result) + runtime_table(result)
                        + "\n")
    return StageResult(primary="bench.json", metrics=flatten_bench(result))


def _cold_settings(cfg: BenchConfig) -> dict | None:
    if not cfg.cold_runs:
        return None
    caches, size = evict_size()
    return {"runs": cfg.cold_runs, "evict_bytes": size, "caches": caches}


def _methods(cfg: BenchConfig, energy_cfg: EnergyConfig, models: dict) -> dict[str, str]:
    first = next((e for m in models.values() for e in m.get("energy", {}).values()), None)
    return {
        "accuracy": "argmax of the logits over the whole test split (ORT CPU; PyTorch for the "
                    "eager peer)",
        "accuracy_ci": (
            f"{ACC_LEVEL:.0%} Wilson score interval of each test accuracy (correct / test "
            "samples)"),
        "accuracy_tests": (
            "McNemar's exact test between every two models on the same test samples: b = "
            "samples only the first gets right, c = only the second, two-sided p = 2 x "
            "P(Binomial(b + c, 1/2) <= min(b, c)); p < 0.05 = a significant difference; "
            "predicted classes in predictions.npz"),
        "cold_latency": (
            f"before each of {cfg.cold_runs} timed calls per model and setting, one byte of "
            f"every 64-byte line of a buffer of {EVICT_FACTOR:g}x this core's L2 + L3 is read "
            "(evicting the model's weights and activations from the caches); one cold call per "
            "model per round, "
            "models in rotating order, rounds interleaved with the warm chunks; a warm chunk "
            "after a cold round starts with one untimed call; with several threads other cores' "
            "private caches may stay warm") if cfg.cold_runs else "not measured (cold_runs: 0)",
        "latency": (
            f"wall time per call (ORT CPUExecutionProvider session.run; PyTorch eager module "
            f"call under inference_mode); {cfg.warmup_runs} warm-up runs, then models "
            f"interleaved in chunks of 10 until each has >= {cfg.min_runs} runs and >= "
            f"{cfg.min_time_s} s measured (cap {cfg.max_time_s} s); inputs are real test "
            "samples; threads = intra-op threads (0 = all cores; torch.set_num_threads "
            "matched)"),
        "latency_ci": (
            f"{CI_LEVEL:.0%} percentile-bootstrap interval of p50 ({CI_RESAMPLES} seeded "
            "resamples); it treats runs as independent, so drift between runs widens the real "
            "uncertainty beyond it"),
        "limit": ("floor + batch x (fp32 MACs / fp32 peak + int8 MACs / int8 peak) per model, "
                  "MACs per sample counted from its ONNX graph; floor = p50 of one session.run "
                  "of a 1-element Add; peaks = ORT's fp32 MatMul and the faster of its u8s8 "
                  "MatMulInteger / QLinearMatMul on a cache-resident [64x256] x [256x256], "
                  "measured before each thread setting (docs/measurement.md); % of the limit = "
                  "limit / p50"),
        "memory": ("peak RSS of a fresh process loading the model and running every batch size "
                   f"10 times at {cfg.threads[0]} thread(s), minus its RSS just before loading "
                   "(interpreter, runtime library and inputs excluded; the library's own RSS is "
                   "runtime_import_bytes)") if cfg.memory else "not measured (memory: false)",
        "energy": (f"{first['label']}: {first['why']}; back-to-back inference for >= "
                   f"{cfg.energy_time_s:g} s per model and batch size at {cfg.threads[0]} "
                   f"thread(s), in 2 interleaved windows; per inference = energy / samples; "
                   f"CO2e at {energy_cfg.grid_gco2_per_kwh:g} gCO2/kWh")
        if first else "not measured (energy_time_s: 0)",
    }


def flatten_bench(result: dict) -> dict:
    """`<model>.accuracy_pct`, `<model>.b1_t1.p50_ms`, ...: names that gates can refer to."""
    out = {}
    for name, m in result["models"].items():
        for key in ("accuracy_pct", "size_bytes", "params"):
            out[f"{name}.{key}"] = m[key]
        if "accuracy_ci_pct" in m:
            out[f"{name}.accuracy_ci_low_pct"], out[f"{name}.accuracy_ci_high_pct"] = (
                m["accuracy_ci_pct"])
        test = find_paired(result.get("accuracy_tests", []), result["baseline"], name)
        if test is not None:
            out[f"{name}.accuracy_drop_p_value"] = test["p_value"]
        for setting, lat in m["latency"].items():
            for key in (*LATENCY_METRICS, "pct_of_limit"):
                if key in lat:
                    out[f"{name}.{setting}.{key}"] = lat[key]
                if key in (lat.get("cold") or {}):
                    out[f"{name}.{setting}.cold_{key}"] = lat["cold"][key]
        if m.get("memory"):
            out[f"{name}.memory_peak_bytes"] = m["memory"]["peak_delta_bytes"]
        for i, (setting, e) in enumerate(m.get("energy", {}).items()):
            out[f"{name}.{setting}.energy_mj_per_inference"] = e["mj_per_inference"]
            if i == 0:  # the first batch size listed, first thread count: the headline
                out[f"{name}.energy_mj_per_inference"] = e["mj_per_inference"]
                out[f"{name}.co2e_g_per_million"] = e["co2e_g_per_million"]
    return out | flatten_runtimes(result.get("runtimes"))
