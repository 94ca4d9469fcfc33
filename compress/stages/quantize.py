"""Stage `quantize`: int8 post-training quantization of an exported ONNX model with ONNX Runtime's
own tools, with the settings chosen by measuring on this machine, not by assuming.

Consumes an ONNX model; produces `model.onnx` (int8, same input/output names and metadata) and
`quantize.json`: every candidate setting (activation type x format) with its accuracy and
latency against fp32, the choice and why, and every accuracy-aware trial (excluded nodes,
accuracy, latency). Accuracy decisions use the validation split; the test split is reported.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from compress import artifacts
from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.measure.latency import measure_interleaved
from compress.measure.ort import batch_of
from compress.measure.system import cpu_info
from compress.onnx.contract import (
    accuracy_entry,
    set_metadata,
    write_contract_json,
)
from compress.onnx.external import copy_model, model_size_bytes
from compress.onnx.inspection import int8_weight_fraction
from compress.onnx.mobile import (
    TargetOptions,
    cpu_target_metrics,
    declared_batch,
    finish_mobile,
    fixed_shape,
    target_metric_names,
)
from compress.onnx.portable import PORTABLE_METRICS
from compress.onnx.quantization import (
    RECURRENT_OPS,
    CalibrationConfig,
    Quantizer,
    Setting,
    calibration_sample,
    int8_ops,
    node_sensitivity,
    op_counts,
    ops_text,
    preprocess,
)
from compress.renames import renamed_fields
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage, source_of


class QuantizeConfig(StageConfig, TargetOptions):
    stage: Literal["quantize"] = "quantize"
    target: Literal["cpu", "mobile", "portable"] = Field(
        "cpu", description=f"{TargetOptions.model_fields['target'].description}; portable: "
        "QDQ, standard ai.onnx ops only, dynamic batch, opset 19, checked to load and predict "
        "in onnxruntime, OpenVINO (when installed) and onnx's reference evaluator")
    input: str = Field(description="id of the stage whose ONNX model is quantized")
    mode: Literal["static", "dynamic"] = Field(
        "static", description="static: calibrated int8 activations and weights; dynamic: int8 "
        "weights, activations quantized at run time (MLP/RNN weights, no calibration). Models "
        "with recurrent or MatMul ops (rnn, transformer) measure dynamic candidates in static "
        "mode too"
    )
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    activation_type: Literal["auto", "uint8", "int8"] = Field(
        "auto", description="auto = measure both and keep the faster"
    )
    format: Literal["auto", "qdq", "qoperator"] = Field(
        "qdq", description="QDQ (portable) or QOperator (QLinear* ops); auto = measure both"
    )
    per_channel: bool = Field(True, description="one int8 scale per output channel of a weight")
    reduce_range: Literal["auto", "true", "false"] = Field(
        "auto", description="7-bit weights (avoids int16 saturation of uint8 x int8 on x86 "
        "without VNNI); auto = measure with and without, for uint8 activations"
    )
    select_tolerance_pct: float = Field(
        3.0, ge=0, le=100, description="settings within this much of the fastest count as "
        "equally fast; among them the most accurate (val) wins"
    )
    max_val_accuracy_drop_pts: float | None = Field(
        None, ge=0, le=100, description="accuracy-aware: exclude the most sensitive nodes from "
        "quantization until val accuracy is within this many points of fp32 (the budget of "
        "the search, on the val split; was `max_accuracy_drop_pts`)"
    )
    when_slower: Literal["keep", "fail"] = Field(
        "keep", description="when the chosen int8 model is slower than its fp32 input at every "
        "batch size measured: keep it (with a warning; the pipeline then ships the fastest model "
        "that meets the gates) or fail the stage")
    max_excluded_nodes: int = Field(8, ge=0, le=1000, description="node budget of that search")
    select_batch_sizes: list[int] = Field(
        default_factory=lambda: [1, 64], min_length=1,
        description="batch sizes whose latency decides between settings",
    )
    select_time_s: float = Field(1.0, gt=0, le=60, description="timing per setting and batch")
    threads: int = Field(1, ge=0, description="intra-op threads while choosing (0 = all cores)")

    references = {"input": {"onnx"}}
    _renamed = renamed_fields("quantize", {"max_accuracy_drop_pts": "max_val_accuracy_drop_pts"})

    @field_validator("select_batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]):
        if any(b < 1 for b in v):
            raise ValueError("every batch size must be >= 1")
        return v

    @model_validator(mode="after")
    def _fits_target(self):
        if self.target == "portable":
            for name, fits in (("mode", "static"), ("format", "qdq")):
                if getattr(self, name) not in (fits, "auto"):
                    raise ValueError(f"target: portable needs {name}: {fits}, not "
                                     f"{getattr(self, name)}")
        if self.target != "mobile":
            return self
        # NNAPI runs u8 activations x s8 symmetric weights in QDQ form only (ORT's NNAPI EP
        # op_support_helpers: "TODO, add support of s8s8"); dynamic and QOperator int8 ops are
        # not in any mobile EP's op list.
        wrong = {"mode": (self.mode, "static"), "format": (self.format, "qdq"),
                 "activation_type": (self.activation_type, "uint8"),
                 "reduce_range": (self.reduce_range, "false")}
        for name, (value, fits) in wrong.items():
            if value not in (fits, "auto"):
                raise ValueError(f"target: mobile needs {name}: {fits} (or auto), not {value}")
        return self


def candidate_settings(cfg: QuantizeConfig, ops: dict[str, int] | None = None) -> list[Setting]:
    """The settings measured. `ops` (op type counts of the float model): static QDQ leaves
    recurrent ops float (ORT has no QDQ GRU/LSTM) while dynamic has an int8 LSTM and MatMul, so
    models with those ops get the dynamic settings as candidates too."""
    if cfg.target == "mobile":
        # uint8 activations x symmetric int8 weights in QDQ; per channel on Conv only (NNAPI's
        # FULLY_CONNECTED has no per-channel weights) or per tensor everywhere: measured.
        per_tensor = Setting("static", "uint8", "qdq", False, tag="pt")
        if not cfg.per_channel:
            return [per_tensor]
        return [Setting("static", "uint8", "qdq", True, per_channel_ops=("Conv",),
                        tag="convpc"), per_tensor]
    ranges = {"auto": [False, True], "true": [True], "false": [False]}[cfg.reduce_range]
    if cfg.target == "portable":  # static QDQ only: QOperator and dynamic ops are not portable
        acts = ["uint8", "int8"] if cfg.activation_type == "auto" else [cfg.activation_type]
        return [Setting("static", a, "qdq", cfg.per_channel, r)
                for a in acts for r in (ranges if a == "uint8" else [False])]
    dynamic = [Setting("dynamic", "uint8", "qoperator", cfg.per_channel, r) for r in ranges]
    if cfg.mode == "dynamic":
        return dynamic
    acts = ["uint8", "int8"] if cfg.activation_type == "auto" else [cfg.activation_type]
    fmts = ["qdq", "qoperator"] if cfg.format == "auto" else [cfg.format]
    out = []
    for f in fmts:
        for a in acts:
            # Saturation is a uint8-activation issue; int8 x int8 kernels do not pair-sum.
            for r in (ranges if a == "uint8" else [cfg.reduce_range == "true"]):
                out.append(Setting("static", a, f, cfg.per_channel, r))
    if ops and any(op in ops for op in (*RECURRENT_OPS, "MatMul")):
        out += dynamic
    return out


class _Evaluator:
    """Accuracy (val and test) and latency against fp32, for any model file."""

    def __init__(self, cfg: QuantizeConfig, data, fp32_path: Path):
        self.cfg, self.data = cfg, data
        self.fp32 = ort_measure.make_session(fp32_path, cfg.threads)
        self.input = self.fp32.get_inputs()[0].name
        self.fp32_val = self.accuracy(self.fp32, data.x_val, data.y_val)
        self.fp32_test = self.accuracy(self.fp32, data.x_test, data.y_test)

    @staticmethod
    def accuracy(session, x, y) -> float:
        return ort_measure.accuracy_pct(ort_measure.predict(session, x), y)

    def evaluate(self, path: Path) -> dict:
        s = ort_measure.make_session(path, self.cfg.threads)
        val = self.accuracy(s, self.data.x_val, self.data.y_val)
        test = self.accuracy(s, self.data.x_test, self.data.y_test)
        return {"val_accuracy_pct": val, "test_accuracy_pct": test,
                "val_drop_pts": round(self.fp32_val - val, 4),
                "test_drop_pts": round(self.fp32_test - test, 4)}

    def speedups(self, paths: dict[str, Path], batch_sizes: list[int], time_s: float) -> dict:
        """{name: {"b1": {p50_ms, fp32_p50_ms, speedup}, ...}}: every model interleaved with
        fp32 in one loop per batch size, so drift hits all alike."""
        sessions = {"fp32": self.fp32}
        for n, p in paths.items():
            sessions[n] = ort_measure.make_session(p, self.cfg.threads)
        out: dict[str, dict] = {n: {} for n in paths}
        for b in batch_sizes:
            x = batch_of(self.data.x_test, b)
            feeds = {n: {self.input: x} for n in sessions}
            stats = measure_interleaved(sessions, feeds, warmup_runs=10, min_runs=50,
                                        min_time_s=time_s, max_time_s=20 * time_s)
            for n in paths:
                out[n][f"b{b}"] = {"p50_ms": stats[n].p50_ms, "fp32_p50_ms": stats["fp32"].p50_ms,
                                   "speedup": round(stats["fp32"].p50_ms / stats[n].p50_ms, 4)}
        return out


def _score(lat: dict) -> float:
    """Geometric mean of the speed-ups over the batch sizes measured."""
    return math.exp(sum(math.log(v["speedup"]) for v in lat.values()) / len(lat))



def _accuracy_aware(cfg, quantizer, ev, setting, work, x_debug, best, trials, batches) -> dict:
    """Exclude the most quantization-sensitive nodes one at a time until the val-accuracy budget
    holds or the node budget is spent; every trial is recorded, the best one kept."""
    qdq = Setting(setting.mode, setting.activation_type, "qdq", setting.per_channel)
    probe = quantizer.quantize(qdq, work / "sensitivity.onnx")
    ranking = node_sensitivity(quantizer.float_path, probe, x_debug, ev.input, work)
    excluded: list[str] = []
    for node in ranking[: cfg.max_excluded_nodes]:
        excluded.append(node["node"])
        path = quantizer.quantize(setting, work / f"trial{len(excluded)}.onnx", excluded)
        trial = {"setting": setting.name, "excluded_nodes": list(excluded),
                 "excluded_sqnr_db": node["sqnr_db"], "path": path, **ev.evaluate(path)}
        trial["latency"] = ev.speedups({"trial": path}, batches,
                                       cfg.select_time_s / 2)["trial"]
        trials.append(trial)
        if (trial["val_accuracy_pct"], -len(excluded)) > (best["val_accuracy_pct"],
                                                          -len(best["excluded_nodes"])):
            best = trial
        if trial["val_drop_pts"] <= cfg.max_val_accuracy_drop_pts:
            best = trial
            break
    return best


def metric_names(cfg: QuantizeConfig) -> tuple[str, ...]:
    return ("test_accuracy_pct", "val_accuracy_pct", "fp32_test_accuracy_pct",
            "fp32_val_accuracy_pct", "accuracy_drop_pts", "setting", "excluded_nodes",
            "faster_than_fp32", "int8_weight_fraction", "size_bytes", "fp32_size_bytes",
            "calibration_method", "quantization_mode", "int8_ops", "float_ops", "note",
            "warning", *(f"speedup_vs_fp32_b{b}" for b in _select_batches(cfg)),
            *target_metric_names(cfg), *(PORTABLE_METRICS if cfg.target == "portable" else ()))


def _select_batches(cfg: QuantizeConfig, shape: list[int] | None = None) -> list[int]:
    """A mobile build is timed at the batch size it is fixed to (1 unless input_shape says)."""
    if cfg.target != "mobile":
        return cfg.select_batch_sizes
    return [shape[0] if shape else (cfg.input_shape or [1])[0]]


@register_stage(QuantizeConfig, produces="onnx", metrics=metric_names)
def quantize(cfg: QuantizeConfig, ctx: StageContext) -> StageResult:
    data = ctx.dataset()
    src = ctx.inputs[cfg.input]
    check = ort_measure.make_session(src.path, 1)
    ort_measure.check_input_shape(check, data.input_shape, src.path)
    shape = fixed_shape(cfg, data.input_shape, ctx.stage_id) if cfg.target == "mobile" else None
    batches = _select_batches(cfg, shape)
    calibration = cfg.calibration
    if declared_batch(check):  # a model fixed to batch b can only be calibrated b at a time
        calibration = calibration.model_copy(update={"batch_size": declared_batch(check)})
    work = ctx.out_dir / "work"
    work.mkdir()
    float_path = work / "float.onnx"
    preprocess(src.path, float_path)
    ev = _Evaluator(cfg, data, src.path)
    x_calib = calibration_sample(data.x_train, calibration)
    quantizer = Quantizer(float_path, work, calibration, x_calib, ev.input)
    settings = candidate_settings(cfg, op_counts(float_path))

    candidates = _measure_candidates(cfg, quantizer, ev, settings, work, batches)
    trials: list[dict] = []
    chosen, why = _choose(cfg, candidates, settings, quantizer, ev, data, work, batches, trials)
    faster = _check_speed(cfg, ctx.stage_id, chosen)
    out = ctx.out_dir / "model.onnx"
    if cfg.target == "mobile":
        target, target_meta = finish_mobile(chosen["path"], out, shape, data.x_test,
                                            ctx.stage_id)
    elif cfg.target == "portable":
        target, target_meta = _portable(chosen["path"], out, data.x_test, ctx.stage_id)
    else:
        copy_model(chosen["path"], out)  # with its external weights file, if it has one
        target, target_meta = cpu_target_metrics(out), None
    metrics = _metrics(cfg, chosen, ev, out, src.path, faster) | target
    _stamp(cfg, ctx, src, out, chosen, metrics, len(data.y_test), target_meta, shape)
    metrics["size_bytes"] = model_size_bytes(out)
    warning = int8_warning(cfg, ctx.stage_id, chosen, faster, metrics["size_bytes"],
                           metrics["fp32_size_bytes"])
    metrics["warning"] = warning  # the report lists every stage's warning

    def public(c: dict) -> dict:
        return {k: v for k, v in c.items() if k != "path"}

    artifacts.write_json(ctx.out_dir / "quantize.json", {
        "chosen": public(chosen), "why": why, "warning": warning,
        "fp32": {"val_accuracy_pct": ev.fp32_val, "test_accuracy_pct": ev.fp32_test},
        "candidates": [public(c) for c in candidates], "trials": [public(t) for t in trials],
        "target": target_meta or {"target": "cpu"},
        "method": {"accuracy": "ORT CPU, argmax over the whole val/test split; decisions on val",
                   "latency": f"p50 of session.run, interleaved with fp32, {cfg.threads} thread(s)",
                   "sensitivity": "SQNR of each node's output, int8 vs fp32 (qdq_loss_debug)"},
        "cpu": cpu_info(),
    })
    shutil.rmtree(work)
    return StageResult(primary="model.onnx", metrics=metrics)


def _portable(built: Path, out: Path, x_test, stage_id: str) -> tuple[dict, dict]:
    """The portable build (onnx/portable.py) loaded and checked in every installed runtime."""
    from compress.measure.runtimes.check import check_in_runtimes
    from compress.onnx.portable import build_portable

    meta = build_portable(built, out, stage_id)
    meta["runtimes"] = check_in_runtimes(out, x_test, stage_id)
    checked = [r for r in meta["runtimes"].values() if r["checked"]]
    agree = min(r["agree"] / r["samples"] for r in checked) * 100
    metrics = cpu_target_metrics(out) | {
        "target": "portable", "portable_opset": meta["opset"],
        "portable_runtimes": ", ".join(n for n, r in meta["runtimes"].items() if r["checked"]),
        "portable_runtimes_agree_pct": agree}
    return metrics, meta


def _measure_candidates(cfg, quantizer, ev, settings, work: Path, batches) -> list[dict]:
    """Every candidate setting quantized, its accuracy measured, and all of them timed against
    fp32 side by side."""
    candidates = []
    for setting in settings:
        path = quantizer.quantize(setting, work / f"{setting.name}.onnx")
        candidates.append({"setting": setting.name, "excluded_nodes": [], "path": path,
                           **ev.evaluate(path)})
    lat = ev.speedups({c["setting"]: c["path"] for c in candidates}, batches,
                      cfg.select_time_s)
    for c in candidates:
        c["latency"], c["speedup_score"] = lat[c["setting"]], round(_score(lat[c["setting"]]), 4)
    return candidates


def _choose(cfg, candidates, settings, quantizer, ev, data, work, batches,
            trials: list) -> tuple[dict, str]:
    """(the model to ship, why): the most accurate of the near-fastest settings within the
    val budget; where none is within it, the accuracy-aware search (its trials go to
    `trials`)."""
    budget = cfg.max_val_accuracy_drop_pts
    eligible = [c for c in candidates if budget is None or c["val_drop_pts"] <= budget]
    if eligible:
        fastest = max(c["speedup_score"] for c in eligible)
        near = [c for c in eligible
                if c["speedup_score"] >= fastest * (1 - cfg.select_tolerance_pct / 100)]
        chosen = max(near, key=lambda c: (c["val_accuracy_pct"], c["speedup_score"]))
        why = (f"most accurate (val) of the settings within {cfg.select_tolerance_pct:g} % of "
               "the fastest (geometric-mean speed-up over fp32 at batch sizes "
               f"{batches})"
               + ("" if budget is None else f", within the {budget} pt val-accuracy budget"))
        return chosen, why
    start = max(candidates, key=lambda c: (c["val_accuracy_pct"], c["speedup_score"]))
    setting = next(s for s in settings if s.name == start["setting"])
    x_debug = calibration_sample(data.x_val, cfg.calibration)[:256]
    chosen = _accuracy_aware(cfg, quantizer, ev, setting, work, x_debug, start, trials, batches)
    within = chosen["val_drop_pts"] <= budget
    why = (f"no setting met the {budget} pt val-accuracy budget; accuracy-aware search "
           f"excluded {len(chosen['excluded_nodes'])} node(s) from quantization and "
           + ("met it" if within else "did not meet it: best model kept; a `qat` stage "
                                      "(quantization-aware fine-tuning) may"))
    return chosen, why


def _check_speed(cfg, stage_id: str, chosen: dict) -> bool:
    """Whether the chosen model is faster than fp32 at every batch size measured; a model
    slower at every one fails the stage where `when_slower` says so."""
    lat = chosen.get("latency") or {}
    faster = bool(lat) and all(v["speedup"] > 1 for v in lat.values())
    slower = bool(lat) and all(v["speedup"] < 1 for v in lat.values())
    if slower and cfg.when_slower == "fail":
        raise StageError(
            f"stage '{stage_id}': the int8 model ({chosen['setting']}) is slower than fp32 at "
            f"every batch size measured ({_speedups_text(lat)}) and field 'when_slower' is "
            "fail; ship the fp32 model, or set when_slower: keep")
    return faster


def int8_warning(cfg, stage_id: str, chosen: dict, faster: bool, size_bytes: int,
                 fp32_size_bytes: int) -> str | None:
    """What the int8 model is worse at than its fp32 input, printed and returned: not faster at
    every batch size (cpu target), larger on disk (a small model's scales, zero points and Q/DQ
    nodes can outweigh its 4x smaller weights); None when neither."""
    worse = []
    if not faster and cfg.target == "cpu":
        worse.append(f"not faster than fp32 at every batch size on this CPU "
                     f"({_speedups_text(chosen.get('latency') or {})})")
    if size_bytes > fp32_size_bytes:
        worse.append(f"larger than fp32 ({size_bytes:,} vs {fp32_size_bytes:,} bytes: its "
                     "quantization parameters and Q/DQ nodes outweigh the smaller weights)")
    if not worse:
        return None
    warning = (f"the int8 model ({chosen['setting']}) is {' and '.join(worse)}: int8 does not "
               "pay off for this model here; keep fp32 or make the model larger per op")
    print(f"warning: {stage_id}: {warning}", file=sys.stderr)
    return warning


def _metrics(cfg, chosen: dict, ev, out: Path, fp32_path: Path, faster: bool) -> dict:
    dynamic = chosen["setting"].startswith("dynamic")
    ops = int8_ops(out)
    metrics = {
        "test_accuracy_pct": chosen["test_accuracy_pct"],
        "val_accuracy_pct": chosen["val_accuracy_pct"],
        "fp32_test_accuracy_pct": ev.fp32_test,
        "fp32_val_accuracy_pct": ev.fp32_val,
        "accuracy_drop_pts": round(ev.fp32_test - chosen["test_accuracy_pct"], 4),
        "setting": chosen["setting"],
        "excluded_nodes": len(chosen["excluded_nodes"]),
        "faster_than_fp32": faster,
        "int8_weight_fraction": round(int8_weight_fraction(out), 4),
        "size_bytes": out.stat().st_size,
        "fp32_size_bytes": model_size_bytes(fp32_path),
        "calibration_method": None if dynamic else cfg.calibration.method,
        "quantization_mode": "dynamic" if dynamic else "static",
        "int8_ops": ops_text(ops["int8"]),
        "float_ops": ops_text(ops["float"]),
        "note": _float_note(ops["float"], dynamic),
    }
    for key, v in (chosen.get("latency") or {}).items():
        metrics[f"speedup_vs_fp32_{key}"] = v["speedup"]
    return metrics


def _stamp(cfg, ctx: StageContext, src, out: Path, chosen: dict, metrics: dict,
           test_samples: int, target_meta: dict | None, shape: list[int] | None) -> None:
    """The contract metadata of the fp32 model, with this model's accuracy, source and
    quantization settings (and mobile target), into `out` and its model.json."""
    meta = ort_measure.read_metadata(src.path)
    meta["compress.metrics"] = accuracy_entry(metrics, chosen["test_accuracy_pct"],
                                              test_samples)
    meta["compress.source"] = source_of(ctx, src, onnx_sha256=src.sha256)
    meta["compress.quantization"] = {"setting": chosen["setting"], "mode": cfg.mode,
                                     "per_channel": cfg.per_channel,
                                     "calibration": cfg.calibration.model_dump(mode="json"),
                                     "excluded_nodes": chosen["excluded_nodes"]}
    if target_meta:
        meta["compress.target"] = target_meta
    if shape is not None:
        meta["compress.input"] = {**meta.get("compress.input", {}), "shape": shape}
    set_metadata(out, meta)
    write_contract_json(out)


def _float_note(float_ops: dict[str, int], dynamic: bool) -> str | None:
    recurrent = {op: n for op, n in float_ops.items() if op in RECURRENT_OPS}
    if not recurrent:
        return None
    return (f"{ops_text(recurrent)} stay fp32: ONNX Runtime has no int8 kernel for them in "
            f"{'dynamic' if dynamic else 'static QDQ'} quantization (only LSTM, dynamic); the "
            "other weighted ops are int8")


def _speedups_text(lat: dict) -> str:
    return ", ".join(f"{k}: {v['speedup']:.2f}x" for k, v in lat.items()) or "not measured"
