"""Multiply-accumulates per sample, counted from an ONNX graph, split by the precision ORT runs
them in (what the bench's limit figure divides by the machine's peak rates).

Shapes come from one run of the graph in ONNX Runtime at batch 1 with every tensor exposed as an
output (unoptimized, so the nodes are the file's): exact for contrib ops (QGemm, QLinearAdd,
QLinearGlobalAveragePool) that ONNX's and ORT's shape inference leave unknown.

Per node: Conv-like = N x C_out x prod(out spatial) x C_in / group x prod(kernel); Gemm-like =
M x N x K; MatMul-like = prod(output shape) x K. int8: QLinearConv, QGemm, QLinearMatMul,
ConvInteger, MatMulInteger, the dynamic int8 ops, and QDQ Conv/Gemm/MatMul whose weight comes
from a DequantizeLinear (ORT fuses them into int8 kernels); fp32: the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# op type -> (kind, index of the data input, index of the weight input)
_OPS = {
    "Conv": ("conv", 0, 1), "QLinearConv": ("conv", 0, 3), "ConvInteger": ("conv", 0, 1),
    "Gemm": ("gemm", 0, 1), "QGemm": ("gemm", 0, 3),
    "MatMul": ("matmul", 0, 1), "QLinearMatMul": ("matmul", 0, 3),
    "MatMulInteger": ("matmul", 0, 1), "MatMulIntegerToFloat": ("matmul", 0, 1),
    "DynamicQuantizeMatMul": ("matmul", 0, 1),
}
_INT8 = ("QLinearConv", "ConvInteger", "QGemm", "QLinearMatMul", "MatMulInteger",
         "MatMulIntegerToFloat", "DynamicQuantizeMatMul")


def _shapes(model, sample_shape: list[int] | None) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape at batch 1: one unoptimized ORT run on zeros."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name for t in model.graph.initializer}
    have = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for o in node.output:
            if o and o not in have:
                model.graph.output.append(onnx.ValueInfoProto(name=o))
                have.add(o)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    feeds = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in i.type.tensor_type.shape.dim]
        sample = sample_shape if sample_shape and len(sample_shape) == len(dims) - 1 else \
            [1] * (len(dims) - 1)
        rest = [d or s for d, s in zip(dims[1:], sample, strict=True)]
        dtype = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        feeds[i.name] = np.zeros([1, *rest], dtype=dtype)
    names = [o.name for o in session.get_outputs()]
    shapes = dict(zip(names, (np.shape(v) for v in session.run(None, feeds)), strict=True))
    shapes |= {k: v.shape for k, v in feeds.items()}
    shapes |= {t.name: tuple(t.dims) for t in model.graph.initializer}
    return shapes


def _node_macs(node, kind: str, data: str, weight: str, shapes: dict) -> int:
    out = shapes.get(node.output[0])
    w, x = shapes.get(weight), shapes.get(data)
    if out is None or w is None or x is None:
        return 0
    if kind == "conv":
        group = next((a.i for a in node.attribute if a.name == "group"), 1) or 1
        return int(np.prod(out) * (x[1] // group) * np.prod(w[2:]))
    if kind == "gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return int(np.prod(out) * (x[0] if trans_a else x[-1]))
    return int(np.prod(out) * x[-1])


def count_macs(path: Path, sample_shape: list[int] | None = None) -> dict[str, int]:
    """{"fp32": MACs, "int8": MACs} per sample of the model at `path`. `sample_shape`: the
    input's shape without the batch, for inputs whose dimensions are symbolic."""
    import onnx

    model = onnx.load(str(path))
    shapes = _shapes(model, sample_shape)
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    out = {"fp32": 0, "int8": 0}
    for node in model.graph.node:
        if node.op_type not in _OPS or len(node.input) <= _OPS[node.op_type][2]:
            continue
        kind, d, w = _OPS[node.op_type]
        int8 = node.op_type in _INT8 or producer.get(node.input[w]) == "DequantizeLinear"
        out["int8" if int8 else "fp32"] += _node_macs(node, kind, node.input[d], node.input[w],
                                                      shapes)
    return out
