"""What of a quantized model ONNX Runtime really runs in float, read from the graph ORT runs
(after its fusions: DQ -> Conv -> Q becomes QLinearConv, the NHWC layout transform for int8
convs), not from the file: float ops (with why each is float) and layout transposes.

A float op between two quantized ops (a DequantizeLinear before it, a QuantizeLinear after it)
is a *float island*: it costs its own float kernel plus a dequantize and a quantize.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

_Q = ("QuantizeLinear", "DynamicQuantizeLinear")
_DQ = ("DequantizeLinear",)
# Ops that move int8 data without arithmetic: int8 in, int8 out.
_MOVES = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "MaxPool",
          "Concat", "Slice", "Gather", "Split")
_RECURRENT = ("GRU", "LSTM", "RNN")
# Layout changes ORT inserts: NHWC for int8 convs (Transpose), NCHWc for fp32 convs (Reorder*).
_LAYOUT = ("Transpose", "ReorderInput", "ReorderOutput")


def runtime_graph(path: Path, threads: int = 1):
    """The graph ORT runs on this CPU (ORT_ENABLE_ALL), as an onnx GraphProto."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(Path(tmp) / "runtime.onnx")
        opts.log_severity_level = 3  # ORT warns that NCHWc graphs are CPU-specific: we know
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath).graph


def _is_int8_op(node) -> bool:
    return (node.op_type.startswith("QLinear") or node.op_type in _Q or node.op_type in (
        "QGemm", "QAttention", "ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM",
        "QEmbedLayerNormalization", "QOrderedMatMul"))


def _why(node, int8_in: bool, island: bool, excluded: dict[str, str]) -> str:
    """Why `node` runs in float (a reason of `excluded` where the node is one of those)."""
    # ORT renames the nodes it rewrites (a float Conv becomes `<its output>_nchwc`, its output
    # the fused Relu's): match the node's name or an output name of the node in the file.
    for key, why in excluded.items():
        if key in (node.name, node.name.removesuffix("_nchwc")):
            return why
    if node.op_type in _RECURRENT:
        return "ORT has no int8 kernel for it in static quantization (dynamic: LSTM only)"
    if island:
        return f"ORT quantization left it float ({node.op_type} between quantized ops)"
    return ("after the last quantized op (the model's float output)" if int8_in or not
            node.input else "before the first quantized op (the model's float input)")


def describe(path: Path, excluded: dict[str, str] | None = None) -> tuple[list[dict], list[dict]]:
    """(float ops, transposes) ORT runs for the model file `path`; `excluded`: {node name: why}
    for the nodes the stage chose to leave in float (accuracy search, measured placement)."""
    import onnx

    nodes = onnx.load(str(path)).graph.node
    outputs = {n.name: list(n.output) for n in nodes}
    fused = {n.input[0]: n.output[0] for n in nodes if n.op_type in ("Relu", "Clip")}
    owner = {}  # every name ORT may give the node -> the node's name in the file
    for name in excluded or {}:
        outs = outputs.get(name, [])
        for k in (name, *outs, *(fused[o] for o in outs if o in fused)):
            owner[k] = name
    keys = {k: excluded[n] for k, n in owner.items()}
    floats, transposes = float_ops(runtime_graph(path), keys)
    for f in floats:  # named as the model file names it, not as ORT renamed it
        f["model_node"] = owner.get(f["name"], owner.get(f["name"].removesuffix("_nchwc")))
    return floats, transposes


def float_ops(graph, excluded: dict[str, str] | None = None) -> tuple[list[dict], list[dict]]:
    """(float ops, transposes) of a runtime graph. `excluded`: {node name or weight name: why it
    was left in float}.

    Each float op: {"name", "op", "island", "why"}; each transpose: {"name", "why"}.
    """
    excluded = excluded or {}
    int8: set[str] = set()        # tensors holding quantized data
    after_dq: set[str] = set()    # float tensors computed from a dequantized one
    for node in graph.node:       # ORT writes nodes in topological order
        data = [i for i in node.input[:1] if i]
        if _is_int8_op(node) or (node.op_type in _MOVES and data and data[0] in int8):
            int8.update(node.output)
        elif node.op_type in _DQ or any(i in after_dq for i in node.input):
            after_dq.update(node.output)
    feeds_q: set[str] = set()     # tensors from which a QuantizeLinear is reached
    for node in reversed(graph.node):
        if node.op_type in _Q or any(o in feeds_q for o in node.output):
            feeds_q.update(i for i in node.input if i)
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node.op_type)
    floats, transposes = [], []
    for node in graph.node:
        if node.op_type in _LAYOUT:
            into = any(c in ("QLinearConv", "NhwcMaxPool", "QLinearAdd", "Conv")
                       for c in consumers.get(node.output[0], []))
            kind = ("ORT runs int8 convs in NHWC on x86" if node.op_type == "Transpose" else
                    "ORT runs fp32 convs in its blocked NCHWc layout")
            transposes.append({"name": node.name, "op": node.op_type, "why": (
                kind + (": into it before them" if into else ": back to NCHW after them")
                + (" (int8 data)" if node.input[0] in int8 else " (float data)"))})
            if node.input[0] in int8:
                int8.update(node.output)
            continue
        if node.op_type in _Q + _DQ or _is_int8_op(node) or any(o in int8 for o in node.output):
            continue
        island = any(i in after_dq for i in node.input) and any(o in feeds_q
                                                                for o in node.output)
        floats.append({"name": node.name, "op": node.op_type, "island": island,
                       "why": _why(node, any(i in after_dq for i in node.input), island,
                                   excluded)})
    return floats, transposes


def float_ops_text(floats: list[dict]) -> str:
    """"Conv x1 (why: names), ..." grouped by op type and reason; "none" when all int8."""
    groups: dict[tuple[str, str], list[str]] = {}
    for f in floats:
        groups.setdefault((f["op"], f["why"]), []).append(f.get("model_node") or f["name"])
    return "; ".join(f"{op} x{len(names)} ({why}: {', '.join(names)})"
                     for (op, why), names in groups.items()) or "none"


def graph_report(chosen: dict, out: Path, batches: list[int]) -> dict:
    """The float ops and layout transposes ORT runs for the shipped model, each with why."""
    keep_float = chosen.get("keep_float") or []
    why = {n: f"kept fp32 by placement: measured faster than int8 at batch sizes {batches}"
           for n in keep_float}
    why |= {n: "left in float by the accuracy-aware search (most quantization-sensitive)"
            for n in chosen["excluded_nodes"] if n not in keep_float}
    floats, transposes = describe(out, why)
    return {"float_ops": floats, "transposes": transposes}
