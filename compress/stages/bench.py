"""Stage `bench`: measure ONNX models side by side in ONNX Runtime on the CPU provider.

Consumes ONNX artifacts; produces `bench.json` (every number, the CPU and versions it ran on)
and `bench.md`: test accuracy, file size, parameters and latency p50/p90/p99 per batch size and
thread count, with candidates interleaved in one run so their ratios are fair.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from compress import artifacts
from compress.measure import ort as ort_measure
from compress.measure.latency import measure_interleaved
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

    references = {"models": {"onnx"}}

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


def onnx_param_count(path) -> int:
    """Elements of the float and 8-bit initializers: the weights. Integer shape and index
    constants (int32/int64) are not parameters."""
    import onnx

    kinds = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
             onnx.TensorProto.DOUBLE, onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    # Only the dims are needed; a user's model may point at external data files, left unread.
    model = onnx.load(str(path), load_external_data=False)
    return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type in kinds))


def batch_of(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


MODEL_METRICS = ("accuracy_pct", "size_bytes", "params")
LATENCY_METRICS = ("p50_ms", "p90_ms", "p99_ms", "runs")


def setting_name(batch: int, threads: int) -> str:
    return f"b{batch}_t{threads}"


def metric_names(cfg: BenchConfig) -> list[str]:
    """What `flatten_bench` will name, known from the config alone."""
    settings = [setting_name(b, t) for t in cfg.threads for b in cfg.batch_sizes]
    return [f"{m}.{k}" for m in cfg.models for k in MODEL_METRICS] + [
        f"{m}.{s}.{k}" for m in cfg.models for s in settings for k in LATENCY_METRICS]


@register_stage(BenchConfig, produces="bench", metrics=metric_names)
def bench(cfg: BenchConfig, ctx: StageContext) -> StageResult:
    data = ctx.dataset()
    models: dict[str, dict] = {}
    for name in cfg.models:
        art = ctx.inputs[name]
        session = ort_measure.make_session(art.path, threads=0)
        ort_measure.check_input_shape(session, data.input_shape, art.path)
        logits = ort_measure.predict(session, data.x_test)
        models[name] = {
            "path": str(art.path),
            "sha256": art.sha256,
            "accuracy_pct": ort_measure.accuracy_pct(logits, data.y_test),
            "size_bytes": art.path.stat().st_size,
            "params": onnx_param_count(art.path),
            "latency": {},
        }

    for threads in cfg.threads:
        sessions = {n: ort_measure.make_session(ctx.inputs[n].path, threads) for n in cfg.models}
        for batch in cfg.batch_sizes:
            x = batch_of(data.x_test, batch)
            feeds = {n: {s.get_inputs()[0].name: x} for n, s in sessions.items()}
            stats = measure_interleaved(
                sessions, feeds, cfg.warmup_runs, cfg.min_runs, cfg.min_time_s, cfg.max_time_s
            )
            for n, st in stats.items():
                models[n]["latency"][setting_name(batch, threads)] = {
                    "batch_size": batch, "threads": threads, **st.as_dict()
                }

    result = {
        "models": models,
        "baseline": cfg.models[0],
        "test_samples": len(data.x_test),
        "method": {
            "accuracy": "argmax of ORT CPU logits over the whole test split",
            "latency": (
                f"ORT CPUExecutionProvider, session.run wall time per call; {cfg.warmup_runs} "
                f"warm-up runs, then models interleaved in chunks of 10 until each has >= "
                f"{cfg.min_runs} runs and >= {cfg.min_time_s} s measured (cap {cfg.max_time_s} "
                "s); inputs are real test samples; threads = intra-op threads (0 = all cores)"
            ),
        },
        "cpu": cpu_info(),
        "versions": versions(),
    }
    artifacts.write_json(ctx.out_dir / "bench.json", result)
    artifacts.write_text(ctx.out_dir / "bench.md", bench_table(result) + "\n")
    return StageResult(primary="bench.json", metrics=flatten_bench(result))


def flatten_bench(result: dict) -> dict:
    """`<model>.accuracy_pct`, `<model>.b1_t1.p50_ms`, ...: names that gates can refer to."""
    out = {}
    for name, m in result["models"].items():
        for key in MODEL_METRICS:
            out[f"{name}.{key}"] = m[key]
        for setting, lat in m["latency"].items():
            for key in LATENCY_METRICS:
                out[f"{name}.{setting}.{key}"] = lat[key]
    return out
