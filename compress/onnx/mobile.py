"""Deployment targets: what `target: mobile` makes of an ONNX model, and how ONNX Runtime's own
mobile usability checker rates it per execution provider.

`cpu` is today's behaviour (fastest on the CPU at hand: any format, contrib ops allowed, dynamic
batch). `mobile` follows ORT's mobile guidance for NNAPI, CoreML and XNNPACK: QDQ with standard
`ai.onnx` ops only, uint8 activations with symmetric int8 weights (per channel for Conv, the
only op NNAPI takes per-channel weights for), fixed input shapes, an opset the mobile packages
load, and the ORT-format file converted with runtime optimizations (so that NNAPI/CoreML see the
QDQ groups and only the CPU fallback fuses them).

The coverage figures are those of `onnxruntime.tools.mobile_helpers.usability_checker`: it
decides from op types, shapes and rank against the EP's documented op list; per-op caveats
(listed) and the device's driver are not checked, and nothing here runs on a phone.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from compress.errors import ParityError, StageError

# ORT's compatibility table: opset 21 loads in onnxruntime >= 1.18, whose Android (Maven
# onnxruntime-android) and iOS (onnxruntime-c / -objc pods) packages are full builds.
MOBILE_MAX_OPSET = 21
STANDARD_DOMAINS = ("", "ai.onnx")
# (metric prefix, name in the checker's words, its op list shipped with onnxruntime)
EPS = (("nnapi", "NNAPI", None),
       ("coreml_mlprogram", "CoreML MLProgram", "coreml_supported_mlprogram_ops.md"),
       ("coreml_neuralnetwork", "CoreML NeuralNetwork", "coreml_supported_neuralnetwork_ops.md"))
_EP_FIELDS = ("node_share", "nodes_supported", "nodes_total", "partitions", "unsupported_ops")
# Recorded for every target (a cpu build's coverage says why it would not run on a phone's NPU);
# the fixed shape and its parity only for mobile.
TARGET_METRICS = ("target", "contrib_ops", *(f"{ep}_{f}" for ep, _, _ in EPS for f in _EP_FIELDS))
MOBILE_METRICS = (*TARGET_METRICS, "input_shape", "fixed_shape_max_abs_diff")


class TargetOptions(BaseModel):
    """The deployment target of a stage that shapes the artifact (export, quantize, qat,
    convert). Mixed into those stages' configs."""

    target: Literal["cpu", "mobile"] = Field(
        "cpu", description="cpu: fastest on this CPU (any format, contrib ops, dynamic batch); "
        "mobile: QDQ, standard ai.onnx ops only, uint8 activations x symmetric int8 weights, "
        "fixed input shape, checked with onnxruntime's mobile usability checker")
    input_shape: list[int] | None = Field(
        None, min_length=2, description="mobile: the fixed input shape, batch first (default "
        "[1, *the data's sample shape])")

    @model_validator(mode="after")
    def _shape_needs_mobile(self):
        if self.input_shape is not None and self.target != "mobile":
            raise ValueError("input_shape fixes the input of a `target: mobile` build; set "
                             "target: mobile or drop input_shape")
        if self.input_shape is not None and any(d < 1 for d in self.input_shape):
            raise ValueError(f"input_shape {self.input_shape}: every dimension must be >= 1")
        return self


def fixed_shape(opts: TargetOptions, sample_shape: list[int], stage_id: str) -> list[int]:
    """The input shape a mobile build is fixed to; StageError when it does not fit the data."""
    shape = list(opts.input_shape or [1, *sample_shape])
    if shape[1:] != list(sample_shape):
        raise StageError(
            f"stage '{stage_id}', field input_shape: {shape} does not fit the data, whose "
            f"samples are {list(sample_shape)}; use [batch, {', '.join(map(str, sample_shape))}]")
    return shape


def declared_batch(session) -> int | None:
    """The fixed batch size of a session's first input; None when the batch axis is dynamic."""
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def contrib_ops(path: Path) -> list[str]:
    """`domain:op` of every node outside the standard ONNX domain (com.microsoft QGemm...)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({f"{n.domain}:{n.op_type}" for n in graph.node
                   if n.domain not in STANDARD_DOMAINS})


def fix_input_shape(src: Path, dst: Path, shape: list[int]) -> None:
    """`src` with its (dynamic) input fixed to `shape` and the output shapes that follow, written
    to `dst`: onnxruntime.tools' make_dynamic_shape_fixed, no second export."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    model = onnx.load(str(src))
    try:
        make_input_shape_fixed(model.graph, model.graph.input[0].name, shape)
        fix_output_shapes(model)
    except (ValueError, onnx.checker.ValidationError) as e:
        raise StageError(f"{src}: cannot fix its input shape to {shape} ({e}); give an "
                         "input_shape of the model's rank whose fixed dimensions match") from e
    onnx.save(model, str(dst))


def check_fixed_parity(dynamic: Path, fixed: Path, x: np.ndarray, atol: float = 1e-5) -> float:
    """Largest |logit difference| of the fixed-shape model against the dynamic one over `x`;
    ParityError when a prediction differs or a logit is off by more than `atol`."""
    from compress.measure import ort as ort_measure

    a = ort_measure.predict(ort_measure.make_session(dynamic, 1), x)
    b = ort_measure.predict(ort_measure.make_session(fixed, 1), x)
    diff = float(np.abs(a - b).max())
    if not (a.argmax(1) == b.argmax(1)).all() or diff > atol:
        raise ParityError(f"{fixed}: the fixed-shape model differs from the dynamic one "
                          f"{dynamic} (max |diff| {diff:.3g} > {atol}, or a prediction changed)")
    return diff


def check_usability(path: Path) -> dict:
    """onnxruntime's mobile usability checker on `path`, per EP: the nodes it can run, the
    partitions, the ops it cannot run and why, the caveats it did not check, its verdict.

    Same steps as `python -m onnxruntime.tools.check_onnx_model_mobile_usability`: basic graph
    optimization (what the ORT-format conversion does), ONNX shape inference, then the partition
    estimate with fixed input sizes required, but through the module's functions, not its log.
    """
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    with tempfile.TemporaryDirectory(prefix="compress-mobile-") as tmp:
        optimized = Path(tmp) / "model.onnx"
        try:
            optimize_model(Path(path), optimized)
            model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
        except Exception as e:  # ORT and onnx raise their own types
            raise StageError(f"{path}: onnxruntime's mobile usability checker cannot read it "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    dynamic_inputs, _ = uc.check_shapes(model.graph)
    out: dict = {"dynamic_inputs": [i.name for i in dynamic_inputs], "eps": {}}
    for key, name, ops_file in EPS:
        # The checker logs per-node chatter at INFO and warns about value_info; nothing to act on.
        with contextlib.redirect_stdout(io.StringIO()):
            logging.getLogger().setLevel(logging.ERROR)
            info = (uc.check_nnapi_partitions(model, True) if ops_file is None
                    else uc.check_coreml_partitions(model, True, ops_file))
        out["eps"][key] = _ep_summary(name, info)
    return out


def _ep_summary(name: str, info) -> dict:
    why = []
    if info.nodes_unsupported_due_to_op:
        why.append(f"{info.nodes_unsupported_due_to_op} node(s): operator not supported by "
                   f"{name} ({', '.join(sorted(info.unsupported_ops))})")
    if info.nodes_unsupported_due_to_dynamic_input:
        why.append(f"{info.nodes_unsupported_due_to_dynamic_input} node(s): input has a dynamic "
                   "shape")
    if info.num_unsupported_nodes_due_to_rank:
        why.append(f"{info.num_unsupported_nodes_due_to_rank} node(s): input rank not supported "
                   f"({', '.join(sorted(info.ops_with_unsupported_rank))})")
    return {
        "ep": name,
        "nodes_supported": info.num_supported_nodes,
        "nodes_total": info.num_nodes,
        "node_share": round(info.num_supported_nodes / max(1, info.num_nodes), 4),
        "partitions": info.num_partitions,
        "partition_sizes": [len(g) for g in info.supported_groups],
        "unsupported_ops": sorted(info.unsupported_ops),
        "why_unsupported": why,
        "caveats_not_checked": info.supported_ops_checker.get_caveats(),
        "suitability": info.suitability().name,
    }


def usability_metrics(report: dict) -> dict:
    """The checker's result as flat stage metrics (gateable: `nnapi_node_share`, ...)."""
    out = {}
    for key, ep in report["eps"].items():
        out[f"{key}_node_share"] = ep["node_share"]
        out[f"{key}_nodes_supported"] = ep["nodes_supported"]
        out[f"{key}_nodes_total"] = ep["nodes_total"]
        out[f"{key}_partitions"] = ep["partitions"]
        out[f"{key}_unsupported_ops"] = ", ".join(ep["unsupported_ops"]) or "none"
    return out


def coverage_text(report: dict) -> str:
    """One line per EP, for `compress inspect` and the report."""
    return "; ".join(f"{ep['ep']} {ep['nodes_supported']}/{ep['nodes_total']} nodes in "
                     f"{ep['partitions']} partition(s)"
                     + (f" ({'; '.join(ep['why_unsupported'])})" if ep["why_unsupported"] else "")
                     for ep in (report["eps"][k] for k, _, _ in EPS if k in report["eps"]))


def finish_mobile(built: Path, out: Path, shape: list[int], x_check: np.ndarray,
                  stage_id: str, given: bool = False) -> tuple[dict, dict]:
    """Make `built` (a dynamic or already fixed model) the mobile artifact `out`: input fixed to
    `shape` with parity against `built`, opset within the mobile window, the checker run.
    Returns (stage metrics, the `compress.target` metadata entry).

    A model this stage built (`given=False`) must have no contrib ops: one would be a bug. A
    model the stage was `given` (convert) is reported as it is: the checker says which nodes no
    mobile EP runs, and a warning says how to rebuild it."""
    import onnx

    fix_input_shape(built, out, shape)
    diff = check_fixed_parity(built, out, x_check)
    contrib = contrib_ops(out)
    if contrib:
        why = (f"stage '{stage_id}': the model has contrib ops ({', '.join(contrib)}) that no "
               "mobile EP runs; quantize it with target: mobile (QDQ, standard ops)")
        if not given:
            raise StageError(why)
        print(f"warning: {why}", file=sys.stderr)
    opset = next((o.version for o in onnx.load(str(out), load_external_data=False).opset_import
                  if o.domain in STANDARD_DOMAINS), 0)
    if opset > MOBILE_MAX_OPSET:
        raise StageError(f"stage '{stage_id}': opset {opset} is newer than the mobile window "
                         f"(<= {MOBILE_MAX_OPSET}); export with opset: {MOBILE_MAX_OPSET} or lower")
    report = check_usability(out)
    metrics = {"target": "mobile", "input_shape": "x".join(map(str, shape)),
               "contrib_ops": len(contrib), "fixed_shape_max_abs_diff": diff,
               **usability_metrics(report)}
    meta = {"target": "mobile", "input_shape": shape, "opset": int(opset),
            "fixed_shape_parity_max_abs_diff": diff,
            "usability_checker": "onnxruntime.tools.mobile_helpers.usability_checker",
            "usability": report, "coverage": coverage_text(report),
            "not_checked": "per-op caveats listed, the device's driver and accelerator, "
                           "latency on the device"}
    return metrics, meta


def cpu_target_metrics(path: Path) -> dict:
    """What a cpu build records: its contrib ops and how the checker rates it (None values when
    the checker cannot read the graph: the cpu build does not depend on it)."""
    try:
        coverage = usability_metrics(check_usability(path))
    except StageError:
        coverage = dict.fromkeys(TARGET_METRICS[2:])
    return {"target": "cpu", "contrib_ops": len(contrib_ops(path)), **coverage}


def target_metric_names(opts: TargetOptions) -> tuple[str, ...]:
    return MOBILE_METRICS if opts.target == "mobile" else TARGET_METRICS
