"""`target: portable` int8 builds: QDQ with standard ai.onnx ops only (no com.microsoft contrib
ops, no QOperator QLinear*/Integer ops), a dynamic batch axis, and opset 19, the oldest opset
whose QuantizeLinear/DequantizeLinear both onnx's reference evaluator and OpenVINO run (onnx
has no opset-18 DequantizeLinear kernel; opset-19 files agree with ORT). The stage then loads
the file in every installed runtime (`measure.runtimes.check`) before it is kept."""

from __future__ import annotations

from pathlib import Path

from compress.errors import StageError

PORTABLE_OPSET = 19
STANDARD_DOMAINS = ("", "ai.onnx")
# int8 ops of the QOperator format and of dynamic quantization: standard or not, they are what
# `portable` avoids (OpenVINO rejects per-channel QLinearConv; ORT-web runs them slowly)
QOPERATOR_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu",
    "QLinearSoftmax", "QLinearReduceMean", "QGemm", "ConvInteger", "MatMulInteger",
    "DynamicQuantizeLinear"})
PORTABLE_METRICS = ("portable_opset", "portable_runtimes", "portable_runtimes_agree_pct")


def _why_not_portable(model) -> list[str]:
    why = []
    contrib = sorted({f"{n.domain}:{n.op_type}" for n in model.graph.node
                      if n.domain not in STANDARD_DOMAINS})
    if contrib:
        why.append(f"contrib ops {', '.join(contrib)}")
    qop = sorted({n.op_type for n in model.graph.node if n.op_type in QOPERATOR_OPS})
    if qop:
        why.append(f"QOperator ops {', '.join(qop)}")
    dim = model.graph.input[0].type.tensor_type.shape.dim
    if dim and dim[0].HasField("dim_value"):
        why.append(f"a fixed batch size {dim[0].dim_value}")
    return why


def build_portable(built: Path, out: Path, stage_id: str) -> dict:
    """`built` (a QDQ model) checked for portability and written to `out` at opset 19; the
    `compress.target` metadata entry. StageError when it cannot be made portable."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(built))
    why = _why_not_portable(model)
    if why:
        raise StageError(f"stage '{stage_id}': the int8 model is not portable ({'; '.join(why)});"
                         " target: portable needs format: qdq, mode: static and a model "
                         "exported with a dynamic batch")
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), 0)
    if opset != PORTABLE_OPSET:
        try:
            model = version_converter.convert_version(model, PORTABLE_OPSET)
            onnx.checker.check_model(model)
        except Exception as e:  # onnx's converter and checker raise their own types
            raise StageError(f"stage '{stage_id}': cannot convert the model from opset {opset} "
                             f"to {PORTABLE_OPSET} ({str(e).splitlines()[0][:200]}); export "
                             f"with opset: {PORTABLE_OPSET}") from e
    onnx.save(model, str(out))
    return {"target": "portable", "opset": PORTABLE_OPSET, "from_opset": int(opset),
            "ops": sorted({n.op_type for n in model.graph.node}),
            "domains": sorted({n.domain or "ai.onnx" for n in model.graph.node})}


def portable_target(built: Path, out: Path, x_test, stage_id: str) -> tuple[dict, dict]:
    """The portable build (onnx/portable.py) loaded and checked in every installed runtime."""
    from compress.measure.runtimes.check import check_in_runtimes
    from compress.onnx.mobile import cpu_target_metrics

    meta = build_portable(built, out, stage_id)
    meta["runtimes"] = check_in_runtimes(out, x_test, stage_id)
    checked = [r for r in meta["runtimes"].values() if r["checked"]]
    agree = min(r["agree"] / r["samples"] for r in checked) * 100
    metrics = cpu_target_metrics(out) | {
        "target": "portable", "portable_opset": meta["opset"],
        "portable_runtimes": ", ".join(n for n, r in meta["runtimes"].items() if r["checked"]),
        "portable_runtimes_agree_pct": agree}
    return metrics, meta
