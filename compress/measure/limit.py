"""The machine's limit for a model: `floor + MACs / peak` for each precision, measured here.

- floor: p50 of one `session.run` of a trivial graph (a 1-element Add): what ORT costs per call
  before any arithmetic (Python -> C++, input binding, output allocation);
- peaks: MACs per second of ORT's own GEMM kernels at a cache-resident size (A 64 x 256, B 256 x
  256: 4.2 M MACs, 330 KB of fp32 operands, inside L2), on the bench's thread setting: fp32
  `MatMul`; u8s8 the faster of `MatMulInteger` (uint8 x int8 -> int32) and `QLinearMatMul`
  (uint8 x int8 -> uint8, requantized). Each rate = MACs / (p50 - floor).

A model's limit at batch b is floor + b x (fp32 MACs / fp32 peak + int8 MACs / int8 peak); its
"% of the limit" is limit / p50: 100 % = it runs as fast as this core's GEMM rate allows. MACs
per sample come from the graph (compress/onnx/macs.py, passed in by the bench: measure/ and
onnx/ do not import each other).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

M, K, N = 64, 256, 256
GEMM_MACS = M * K * N


@dataclass(frozen=True)
class MachineLimit:
    threads: int
    floor_ms: float
    fp32_gmacs: float     # GMAC/s of the fp32 GEMM
    int8_gmacs: float     # GMAC/s of the faster u8s8 GEMM
    int8_kernel: str      # which one that was

    def limit_ms(self, macs: dict[str, int], batch: int) -> float:
        """floor + batch x MACs / peak, summed over the precisions the model runs in."""
        return self.floor_ms + batch * (macs.get("fp32", 0) / self.fp32_gmacs
                                        + macs.get("int8", 0) / self.int8_gmacs) * 1e-6

    def record(self) -> dict:
        return {**asdict(self), "gemm": f"[{M}x{K}] x [{K}x{N}] ({GEMM_MACS:,} MACs)"}


def _graphs() -> dict[str, tuple[bytes, dict[str, np.ndarray]]]:
    """{name: (serialized model, feed)}: the trivial graph and the three GEMMs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def model(nodes, inputs, output, inits, elem=TensorProto.FLOAT):
        g = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info(output, elem, None)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
        m.ir_version = 9
        return m.SerializeToString()

    def inp(name, elem, shape):
        return [helper.make_tensor_value_info(name, elem, shape)]

    def const(name, a):
        return numpy_helper.from_array(np.asarray(a), name)

    a32 = rng.normal(size=(M, K)).astype(np.float32)
    a8 = rng.integers(0, 255, (M, K), dtype=np.uint8)
    b32, b8 = rng.normal(size=(K, N)).astype(np.float32), rng.integers(-127, 127, (K, N),
                                                                         dtype=np.int8)
    q = [const("sa", np.float32(0.02)), const("za", np.uint8(128)), const("sb", np.float32(0.01)),
         const("zb", np.int8(0)), const("sy", np.float32(0.5)), const("zy", np.uint8(128))]
    return {
        "floor": (model([helper.make_node("Add", ["x", "x"], ["y"])],
                        inp("x", TensorProto.FLOAT, [1]), "y", []),
                  {"x": np.zeros(1, np.float32)}),
        "fp32": (model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                       inp("a", TensorProto.FLOAT, [M, K]), "y", [const("b", b32)]), {"a": a32}),
        "MatMulInteger": (model([helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])],
                                inp("a", TensorProto.UINT8, [M, K]), "y",
                                [const("b", b8), *q], TensorProto.INT32), {"a": a8}),
        "QLinearMatMul": (model([helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb",
                                                                    "zb", "sy", "zy"], ["y"])],
                                inp("a", TensorProto.UINT8, [M, K]), "y",
                                [const("b", b8), *q], TensorProto.UINT8), {"a": a8}),
    }


def _p50_ms(calls: dict[str, Callable[[], object]], min_time_s: float) -> dict[str, float]:
    from compress.measure.latency import measure_callables

    stats = measure_callables(calls, warmup_runs=20, min_runs=200, min_time_s=min_time_s,
                              max_time_s=20 * min_time_s)
    return {n: s.p50_ms for n, s in stats.items()}


def measure_limit(threads: int, min_time_s: float = 0.3,
                  timer: Callable[[dict], dict[str, float]] | None = None) -> MachineLimit:
    """The floor and the peak rates on this machine with `threads` intra-op threads, the four
    graphs interleaved. `timer` ({name: zero-argument call} -> {name: p50 ms}) is injectable:
    tests give known times instead of timing."""
    import onnxruntime as ort

    calls = {}
    for name, (blob, feed) in _graphs().items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        s = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        calls[name] = functools.partial(s.run, None, feed)
    p50 = (timer or functools.partial(_p50_ms, min_time_s=min_time_s))(calls)
    floor = p50["floor"]

    def rate(name: str) -> float:  # GMAC/s; a GEMM timed at the floor would be a broken timer
        return GEMM_MACS / max(p50[name] - floor, 1e-6) * 1e-6

    kernel = max(("MatMulInteger", "QLinearMatMul"), key=rate)
    return MachineLimit(threads, round(floor, 6), round(rate("fp32"), 3), round(rate(kernel), 3),
                        kernel)


def percent_of_limit(limit_ms: float, p50_ms: float) -> float:
    return round(100 * limit_ms / p50_ms, 1)
