"""Hand-made ONNX graphs with known shapes and MACs (no torch export: fast, exact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def small_cnn(path: Path, pool: str = "reducemean", seed: int = 0) -> Path:
    """input [N, 1, 8, 8] -> Conv 1->8 (3x3, pad 1) -> Relu -> Conv 8->16 (3x3, pad 1) -> Relu
    -> spatial mean (ReduceMean keepdims=1, or GlobalAveragePool) -> Flatten -> Gemm 16->10.

    MACs per sample: 8*64*9 + 16*64*72 + 160 = 4608 + 73728 + 160 = 78496.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [init("w1", 8, 1, 3, 3), init("b1", 8), init("w2", 16, 8, 3, 3), init("b2", 16),
             init("wg", 10, 16), init("bg", 10),
             numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", **conv),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", **conv),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2")]
    if pool == "reducemean":
        nodes.append(helper.make_node("ReduceMean", ["r2", "axes"], ["p"], name="mean",
                                      keepdims=1))
    else:
        nodes.append(helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="mean"))
    nodes += [helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
              helper.make_node("Gemm", ["f", "wg", "bg"], ["logits"], name="head", transB=1)]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def calibration_batch(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)
