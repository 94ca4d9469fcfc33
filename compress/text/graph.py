"""A graph rewrite for exported transformer encoders, kept only where it measures faster.

ONNX Runtime fuses every `Add -> LayerNormalization` of a post-LN transformer (the residual sum
and its norm) into one contrib `SkipLayerNormalization` node. On the CPU that kernel was measured
far slower than the two ops it replaces (onnxruntime 1.32, AVX2 EPYC, 1 thread, batch 1 x 128
tokens x 384: about 330 us per call against about 60 us for LayerNormalization plus Add), which
cost MiniLM's fp32 export 1.02-1.12x in latency and a dynamic-int8 2-layer student 1.12-1.19x
(three side-by-side runs; `benchmarks/layernorm_fusion.py`). The
fusion matches a LayerNormalization whose input comes straight from an Add; normalising a 2-D
view instead (Flatten to rows x hidden, then Reshape back to the Add's shape) computes the same
values and leaves the pattern unmatched, with ORT's default session options, in any consumer.
`embed_export` builds both graphs and keeps the faster one (see `layernorm` there).
"""

from __future__ import annotations

import onnx
from onnx import helper


def unfuse_skip_layernorm(model: onnx.ModelProto) -> int:
    """Rewrite, in place, each LayerNormalization (normalising the last axis) that reads an Add
    into Flatten -> LayerNormalization -> Reshape(back to the Add's shape); returns how many.
    Values are unchanged: LayerNormalization over the last axis is row-wise."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    nodes, count = [], 0
    for node in graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        src = producer.get(node.input[0]) if node.input else None
        if node.op_type != "LayerNormalization" or src is None or src.op_type != "Add" \
                or axis != -1 or len(node.output) != 1:
            nodes.append(node)
            continue
        count += 1
        x, y, tag = node.input[0], node.output[0], f"unfused_ln_{count}"
        nodes += [
            helper.make_node("Shape", [x], [f"{tag}_shape"], name=f"{tag}_shape"),
            helper.make_node("Flatten", [x], [f"{tag}_rows"], name=f"{tag}_flatten",
                             axis=-1),
        ]
        norm = helper.make_node("LayerNormalization", [f"{tag}_rows", *node.input[1:]],
                                [f"{tag}_normed"], name=node.name or tag)
        norm.attribute.extend(node.attribute)
        nodes += [norm, helper.make_node("Reshape", [f"{tag}_normed", f"{tag}_shape"], [y],
                                         name=f"{tag}_reshape")]
    del graph.node[:]
    graph.node.extend(nodes)
    return count
