"""Graph rewrites applied to the quantize stage's working copy of a float model (never to the
fp32 export, whose file, hash and cache entry stay as exported), so ONNX Runtime's int8 kernels
cover the whole graph.

- `ReduceMean` over every spatial axis (what torch.onnx emits for `AdaptiveAvgPool(1)` and
  `x.mean((2, 3))`) becomes `GlobalAveragePool` (+ `Flatten` where keepdims is 0): ORT has
  QLinearGlobalAveragePool but no int8 ReduceMean, so the ReduceMean ran in float between a
  DequantizeLinear and a QuantizeLinear. Same arithmetic, same output shape.
"""

from __future__ import annotations

from pathlib import Path


def _axes(node, inits: dict, consts: dict) -> list[int] | None:
    from onnx import helper, numpy_helper

    for a in node.attribute:
        if a.name == "axes":
            return list(helper.get_attribute_value(a))
    if len(node.input) > 1 and node.input[1]:
        t = inits.get(node.input[1]) or consts.get(node.input[1])
        return None if t is None else [int(v) for v in numpy_helper.to_array(t).ravel()]
    return None  # no axes = every axis (also the batch): not a pool


def _rank(graph, name: str) -> int | None:
    for vi in (*graph.input, *graph.value_info, *graph.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    return None


def pools_to_global_average(src: Path, dst: Path) -> list[str]:
    """Rewrite every spatial ReduceMean of `src` into GlobalAveragePool, written to `dst`;
    returns the names of the nodes rewritten (empty: `dst` is a copy)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    graph = model.graph
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in graph.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    nodes, done = [], []
    for node in graph.node:
        rank = _rank(graph, node.input[0]) if node.op_type == "ReduceMean" else None
        axes = _axes(node, inits, consts) if rank else None
        if rank is None or rank < 3 or axes is None or \
                sorted(a % rank for a in axes) != list(range(2, rank)):
            nodes.append(node)
            continue
        keep = next((helper.get_attribute_value(a) for a in node.attribute
                     if a.name == "keepdims"), 1)
        out = node.output[0] if keep else node.output[0] + "_pooled"
        nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [out],
                                      name=node.name))
        if not keep:
            nodes.append(helper.make_node("Flatten", [out], [node.output[0]], axis=1,
                                          name=node.name + "_flatten"))
        done.append(node.name)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dst))
    return done
