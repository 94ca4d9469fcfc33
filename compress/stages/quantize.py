"""Stage `quantize`: int8 post-training quantization of an exported ONNX model with ONNX Runtime's
own tools, with the settings chosen by measuring on this machine, not by assuming.

Consumes an ONNX model; produces `model.onnx` (int8, same input/output names and metadata) and
`quantize.json`: every candidate setting (activation type x format) with its accuracy and
latency against fp32, the choice and why, and every accuracy-aware trial (excluded nodes,
accuracy, latency). Accuracy decisions use the validation split; the test split is reported.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from compress import artifacts
from compress.measure import ort as ort_measure
from compress.measure.candidates import Evaluator, check_speed, int8_warning, speedup_score
from compress.measure.system import cpu_info
from compress.onnx.contract import (
    accuracy_entry,
    set_metadata,
    write_contract_json,
)
from compress.onnx.external import copy_model, model_size_bytes
from compress.onnx.inspection import int8_weight_fraction
from compress.onnx.islands import float_ops_text, graph_report
from compress.onnx.mobile import (
    TargetOptions,
    cpu_target_metrics,
    declared_batch,
    finish_mobile,
    fixed_shape,
    target_metric_names,
)
from compress.onnx.placement import (
    narrow_convs,
    placement_variants,
    placement_verdict,
    sibling_name,
)
from compress.onnx.portable import PORTABLE_METRICS, portable_target
from compress.onnx.quantization import (
    RECURRENT_OPS,
    CalibrationConfig,
    Quantizer,
    Setting,
    calibration_sample,
    float_note,
    int8_ops,
    node_sensitivity,
    op_counts,
    ops_text,
    preprocess,
)
from compress.onnx.rewrite import pools_to_global_average
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
    narrow_convs: Literal["auto", "int8"] = Field(
        "auto", description="auto = also measure every static setting with the convs of fewer "
        "than `narrow_conv_channels` input channels (an image model's first conv) kept in fp32, "
        "kept only where faster than all-int8 at every select batch size; int8 = never")
    narrow_conv_channels: int = Field(8, ge=1, le=1024, description="what counts as narrow")
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


def candidate_settings(cfg: QuantizeConfig, ops: dict[str, int] | None = None,
                       narrow: list[str] = ()) -> list[Setting]:
    """The settings measured, by target. `narrow`: convs the cpu target also tries in fp32."""
    if cfg.target == "mobile":
        return _mobile_settings(cfg)
    settings = _cpu_settings(cfg, ops)
    if cfg.narrow_convs == "auto":
        settings += placement_variants(settings, list(narrow))
    return settings


def _mobile_settings(cfg: QuantizeConfig) -> list[Setting]:
        # uint8 activations x symmetric int8 weights in QDQ; per channel on Conv only (NNAPI's
        # FULLY_CONNECTED has no per-channel weights) or per tensor everywhere: measured.
        per_tensor = Setting("static", "uint8", "qdq", False, tag="pt")
        if not cfg.per_channel:
            return [per_tensor]
        return [Setting("static", "uint8", "qdq", True, per_channel_ops=("Conv",),
                        tag="convpc"), per_tensor]


def _cpu_settings(cfg: QuantizeConfig, ops: dict[str, int] | None) -> list[Setting]:
    """Activation type x format x 7-bit weights. `ops` (op type counts of the float model):
    static QDQ leaves recurrent ops float (ORT has no QDQ GRU/LSTM) while dynamic has an int8
    LSTM and MatMul, so models with those ops get the dynamic settings as candidates too."""
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


def _accuracy_aware(cfg, quantizer, ev, setting, work, x_debug, best, trials, batches) -> dict:
    """Exclude the most quantization-sensitive nodes one at a time until the val-accuracy budget
    holds or the node budget is spent; every trial is recorded, the best one kept."""
    qdq = Setting(setting.mode, setting.activation_type, "qdq", setting.per_channel)
    probe = quantizer.quantize(qdq, work / "sensitivity.onnx")
    ranking = node_sensitivity(quantizer.float_path, probe, x_debug, ev.input, work)
    excluded: list[str] = []
    ranking = [r for r in ranking if r["node"] not in setting.keep_float]
    for node in ranking[: cfg.max_excluded_nodes]:
        excluded.append(node["node"])
        path = quantizer.quantize(setting, work / f"trial{len(excluded)}.onnx", excluded)
        trial = {"setting": setting.name, "excluded_nodes": list(excluded),
                 "keep_float": list(setting.keep_float),
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
            "calibration_method", "quantization_mode", "int8_ops", "float_ops", "float_islands",
            "transposes", "note", "warning",
            *(f"speedup_vs_fp32_b{b}" for b in _select_batches(cfg)), *target_metric_names(cfg),
            *(PORTABLE_METRICS if cfg.target == "portable" else ()))


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
    preprocess(src.path, work / "pre.onnx")
    # on this working copy only: the fp32 export stays as exported (its hash, its cache entry)
    pooled = pools_to_global_average(work / "pre.onnx", float_path)
    ev = Evaluator(data, src.path, cfg.threads)
    x_calib = calibration_sample(data.x_train, calibration)
    quantizer = Quantizer(float_path, work, calibration, x_calib, ev.input)
    narrow = narrow_convs(float_path, cfg.narrow_conv_channels)
    settings = candidate_settings(cfg, op_counts(float_path), narrow)

    candidates = _measure_candidates(cfg, quantizer, ev, settings, work, batches)
    trials: list[dict] = []
    chosen, why = _choose(cfg, candidates, settings, quantizer, ev, data, work, batches, trials)
    faster = check_speed(chosen, cfg.when_slower, ctx.stage_id)
    out = ctx.out_dir / "model.onnx"
    if cfg.target == "mobile":
        target, target_meta = finish_mobile(chosen["path"], out, shape, data.x_test,
                                            ctx.stage_id)
    elif cfg.target == "portable":
        target, target_meta = portable_target(chosen["path"], out, data.x_test, ctx.stage_id)
    else:
        copy_model(chosen["path"], out)  # with its external weights file, if it has one
        target, target_meta = cpu_target_metrics(out), None
    graph = graph_report(chosen, out, batches)
    metrics = _metrics(cfg, chosen, ev, out, src.path, faster, graph) | target
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
        "graph": {**graph, "pools_rewritten": pooled, "narrow_convs": narrow},
        "target": target_meta or {"target": "cpu"},
        "method": {"accuracy": "ORT CPU, argmax over the whole val/test split; decisions on val",
                   "latency": f"p50 of session.run, interleaved with fp32, {cfg.threads} thread(s)",
                   "sensitivity": "SQNR of each node's output, int8 vs fp32 (qdq_loss_debug)"},
        "cpu": cpu_info(),
    })
    shutil.rmtree(work)
    return StageResult(primary="model.onnx", metrics=metrics)


def _measure_candidates(cfg, quantizer, ev, settings, work: Path, batches) -> list[dict]:
    """Every candidate setting quantized, its accuracy measured, and all of them timed against
    fp32 side by side."""
    candidates = []
    for setting in settings:
        path = quantizer.quantize(setting, work / f"{setting.name}.onnx")
        candidates.append({"setting": setting.name, "excluded_nodes": [],
                           "keep_float": list(setting.keep_float), "path": path,
                           **ev.evaluate(path)})
    lat = ev.speedups({c["setting"]: c["path"] for c in candidates}, batches,
                      cfg.select_time_s)
    for c in candidates:
        c["latency"] = lat[c["setting"]]
        c["speedup_score"] = round(speedup_score(lat[c["setting"]]), 4)
    by_name = {c["setting"]: c for c in candidates}
    for c in candidates:  # a placement variant counts only where it beats its all-int8 self
        if c["setting"] != sibling_name(c["setting"]):
            kept, why = placement_verdict(c["latency"], by_name[sibling_name(c["setting"])]
                                          ["latency"])
            c["placement"] = {"kept": kept, "why": why}
    return candidates


def _choose(cfg, candidates, settings, quantizer, ev, data, work, batches,
            trials: list) -> tuple[dict, str]:
    """(the model to ship, why): the most accurate of the near-fastest settings within the
    val budget; where none is within it, the accuracy-aware search (its trials go to
    `trials`)."""
    budget = cfg.max_val_accuracy_drop_pts
    eligible = [c for c in candidates if (budget is None or c["val_drop_pts"] <= budget)
                and c.get("placement", {}).get("kept", True)]
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
    start = max((c for c in candidates if c.get("placement", {}).get("kept", True)),
                key=lambda c: (c["val_accuracy_pct"], c["speedup_score"]))
    setting = next(s for s in settings if s.name == start["setting"])
    x_debug = calibration_sample(data.x_val, cfg.calibration)[:256]
    chosen = _accuracy_aware(cfg, quantizer, ev, setting, work, x_debug, start, trials, batches)
    within = chosen["val_drop_pts"] <= budget
    why = (f"no setting met the {budget} pt val-accuracy budget; accuracy-aware search "
           f"excluded {len(chosen['excluded_nodes'])} node(s) from quantization and "
           + ("met it" if within else "did not meet it: best model kept; a `qat` stage "
                                      "(quantization-aware fine-tuning) may"))
    return chosen, why


def _metrics(cfg, chosen: dict, ev, out: Path, fp32_path: Path, faster: bool,
             graph: dict) -> dict:
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
        "float_ops": float_ops_text(graph["float_ops"]),
        "float_islands": sum(f["island"] for f in graph["float_ops"]),
        "transposes": len(graph["transposes"]),
        "note": float_note(ops["float"], dynamic),
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
                                     "excluded_nodes": chosen["excluded_nodes"],
                                     "kept_fp32_by_placement": chosen["keep_float"]}
    if target_meta:
        meta["compress.target"] = target_meta
    if shape is not None:
        meta["compress.input"] = {**meta.get("compress.input", {}), "shape": shape}
    set_metadata(out, meta)
    write_contract_json(out)
