"""Stage `bench`: measure models side by side on the CPU: ONNX models in ONNX Runtime and, with
`peers:`, what a user would do without compress (PyTorch eager, ORT's own quantizers).

Consumes ONNX artifacts (and, for peers, the teacher's checkpoint and ONNX); produces
`bench.json` (every number, how it was measured, the CPU and versions it ran on) and `bench.md`:
test accuracy, file size, parameters, latency p50/p90/p99 with a bootstrap CI for p50 per batch
size and thread count (candidates interleaved in one loop), peak memory of a fresh process, and
energy per inference labelled with the method that measured or estimated it.
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
from compress.measure.energy import EnergyConfig, co2e_g_per_million, inference_energy
from compress.measure.latency import CI_LEVEL, CI_RESAMPLES, measure_callables
from compress.measure.memory import measure_memory
from compress.measure.ort import batch_of
from compress.measure.peers import DYNAMIC, LABELS, PEER_IDS, STATIC, TORCH, PeersConfig
from compress.measure.system import cpu_info, versions
from compress.report.markdown import bench_table
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
    peers: PeersConfig | None = Field(
        None, description="peer baselines from the teacher: {checkpoint: ID, onnx: ID}")
    memory: bool = Field(True, description="peak RSS of a fresh process per model")
    energy_time_s: float = Field(
        1.0, ge=0, le=600, description="seconds of inference per model and batch size for "
        "energy per inference (longer if the counter needs it); 0 = skip")

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


def onnx_param_count(path) -> int:
    """Elements of the float and 8-bit initializers: the weights. Integer shape and index
    constants (int32/int64) are not parameters (counted as `compress inspect` does)."""
    from compress.onnx.inspection import inspect_file

    return int(inspect_file(path)["params"])



@dataclass
class _Candidate:
    """One measured model: its record in bench.json and how to run it."""

    record: dict
    path: Path
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


def _onnx_record(path: Path, sha256: str, data, role: str, label: str) -> dict:
    from compress.onnx.external import model_files

    session = ort_measure.make_session(path, threads=0)
    files = model_files(path)
    ort_measure.check_input_shape(session, data.input_shape, path)
    logits = ort_measure.predict(session, data.x_test)
    return {
        "label": label, "role": role, "runtime": "onnxruntime", "path": str(path),
        "sha256": sha256, "accuracy_pct": ort_measure.accuracy_pct(logits, data.y_test),
        # the .onnx and its external weights file(s), if any: what an app must ship
        "size_bytes": sum(p.stat().st_size for p in files), "files": [p.name for p in files],
        "params": onnx_param_count(path), "latency": {},
    }


def _candidates(cfg: BenchConfig, ctx: StageContext, data) -> dict[str, _Candidate]:
    out = {}
    for name in cfg.models:
        art = ctx.inputs[name]
        out[name] = _Candidate(_onnx_record(art.path, art.sha256, data, "model", name), art.path)
    if cfg.peers is None:
        return out
    from compress.measure.peers import TorchCandidate, check_peer_onnx, quantize_peers
    from compress.models import count_params

    p = cfg.peers
    ckpt, fp32 = ctx.inputs[p.checkpoint], ctx.inputs[p.onnx]
    check_peer_onnx(fp32.path, ckpt.sha256, p.onnx, p.checkpoint)
    if p.onnx not in out:
        out[p.onnx] = _Candidate(_onnx_record(fp32.path, fp32.sha256, data, "peer",
                                              LABELS["ort_fp32"]), fp32.path)
    out[p.onnx].record["peer"] = LABELS["ort_fp32"]

    eager = TorchCandidate(ckpt.path)
    out[TORCH] = _Candidate({
        "label": LABELS[TORCH], "role": "peer", "runtime": "torch", "path": str(ckpt.path),
        "sha256": ckpt.sha256,
        "accuracy_pct": ort_measure.accuracy_pct(eager.predict(data.x_test), data.y_test),
        "size_bytes": ckpt.path.stat().st_size, "size_of": "checkpoint file (torch.save)",
        "params": count_params(eager.model), "latency": {},
    }, ckpt.path, torch=eager)
    seed = getattr(ctx.data_cfg, "seed", 0)
    paths, used = quantize_peers(fp32.path, data.x_train, p.calibration_samples, seed,
                                 ctx.out_dir / "peers")
    for name in (STATIC, DYNAMIC):
        rec = _onnx_record(paths[name], artifacts.sha256_file(paths[name]), data, "peer",
                           LABELS[name])
        rec["path"] = f"peers/{paths[name].name}"  # relative: the stage folder is renamed
        out[name] = _Candidate({**rec, "quantization": used[name]}, paths[name])
    return out


MODEL_METRICS = ("accuracy_pct", "size_bytes", "params")
LATENCY_METRICS = ("p50_ms", "p90_ms", "p99_ms", "runs", "p50_ci_low_ms", "p50_ci_high_ms")


def setting_name(batch: int, threads: int) -> str:
    return f"b{batch}_t{threads}"


def metric_names(cfg: BenchConfig) -> list[str]:
    """What `flatten_bench` will name, known from the config alone (gates are checked against
    it when the pipeline loads)."""
    settings = [setting_name(b, t) for t in cfg.threads for b in cfg.batch_sizes]
    names = []
    for m in cfg.model_ids():
        names += [f"{m}.{k}" for k in MODEL_METRICS]
        names += [f"{m}.{s}.{k}" for s in settings for k in LATENCY_METRICS]
        if cfg.memory:
            names.append(f"{m}.memory_peak_bytes")
        if cfg.energy_time_s > 0:
            names += [f"{m}.{setting_name(b, cfg.threads[0])}.energy_mj_per_inference"
                      for b in cfg.batch_sizes]
            names += [f"{m}.energy_mj_per_inference", f"{m}.co2e_g_per_million"]
    return names


@register_stage(BenchConfig, produces="bench", metrics=metric_names)
def bench(cfg: BenchConfig, ctx: StageContext) -> StageResult:
    data = ctx.dataset()
    energy_cfg = ctx.energy or EnergyConfig()
    cands = _candidates(cfg, ctx, data)
    torch_peer = next((c.torch for c in cands.values() if c.torch is not None), None)
    energy: dict = {}
    for threads in cfg.threads:
        # Torch's thread count is process-wide; it is set once per setting for the torch peer.
        settings = torch_peer.settings(threads) if torch_peer else contextlib.nullcontext()
        with settings:
            for batch in cfg.batch_sizes:
                x = batch_of(data.x_test, batch)
                calls = {n: c.bind(x, threads) for n, c in cands.items()}
                stats = measure_callables(calls, cfg.warmup_runs, cfg.min_runs, cfg.min_time_s,
                                          cfg.max_time_s)
                for n, st in stats.items():
                    cands[n].record["latency"][f"b{batch}_t{threads}"] = {
                        "batch_size": batch, "threads": threads, **st.as_dict()}
                if threads == cfg.threads[0] and cfg.energy_time_s > 0:
                    per = inference_energy({n: (f, batch) for n, f in calls.items()},
                                           cfg.energy_time_s, config=energy_cfg)
                    for n, e in per.items():
                        e["co2e_g_per_million"] = co2e_g_per_million(
                            e["joules_per_inference"], energy_cfg.grid_gco2_per_kwh)
                        energy.setdefault(n, {})[f"b{batch}_t{threads}"] = e
        for c in cands.values():
            c.sessions.clear()
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
        "method": _methods(cfg, energy_cfg, models),
        "ort_settings": ort_measure.session_settings(),
        "grid_gco2_per_kwh": energy_cfg.grid_gco2_per_kwh,
        "cpu": cpu_info(),
        "versions": versions(),
    }
    artifacts.write_json(ctx.out_dir / "bench.json", result)
    artifacts.write_text(ctx.out_dir / "bench.md", bench_table(result) + "\n")
    return StageResult(primary="bench.json", metrics=flatten_bench(result))


def _methods(cfg: BenchConfig, energy_cfg: EnergyConfig, models: dict) -> dict[str, str]:
    first = next((e for m in models.values() for e in m.get("energy", {}).values()), None)
    return {
        "accuracy": "argmax of the logits over the whole test split (ORT CPU; PyTorch for the "
                    "eager peer)",
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
        for setting, lat in m["latency"].items():
            for key in ("p50_ms", "p90_ms", "p99_ms", "runs", "p50_ci_low_ms", "p50_ci_high_ms"):
                if key in lat:
                    out[f"{name}.{setting}.{key}"] = lat[key]
        if m.get("memory"):
            out[f"{name}.memory_peak_bytes"] = m["memory"]["peak_delta_bytes"]
        for i, (setting, e) in enumerate(m.get("energy", {}).items()):
            out[f"{name}.{setting}.energy_mj_per_inference"] = e["mj_per_inference"]
            if i == 0:  # the first batch size listed, first thread count: the headline
                out[f"{name}.energy_mj_per_inference"] = e["mj_per_inference"]
                out[f"{name}.co2e_g_per_million"] = e["co2e_g_per_million"]
    return out
