"""Wrappers around ONNX Runtime's own quantization tools (`quant_pre_process`, `quantize_static`,
`quantize_dynamic`, `qdq_loss_debug`) with typed settings: the stage never passes ORT's untyped
`extra_options` through to users.

Calibration is bounded in memory: the calibration reader is consumed in strides of a few batches
(ORT's `CalibStridedMinMax`, which merges each stride into the running ranges or histograms), and
the ranges are cached in a file so every candidate setting and every accuracy-aware trial reuses
one calibration pass.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from compress.errors import StageError


class CalibrationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="how activation ranges are set from the calibration sample"
    )
    samples: int = Field(512, ge=1, le=100_000, description="train samples used to calibrate")
    batch_size: int = Field(32, ge=1, le=4096, description="samples per calibration batch")
    stride_batches: int = Field(
        4, ge=1, le=1024, description="batches held in memory at once (bounds calibration RAM)"
    )
    percentile: float = Field(99.999, gt=90, le=100, description="method percentile: the range")
    seed: int = Field(0, ge=0, description="seed of the calibration sample")


@dataclass(frozen=True)
class Setting:
    """One way to quantize: the knobs the stage chooses between by measuring."""

    mode: str  # static | dynamic
    activation_type: str  # uint8 | int8 (static only)
    fmt: str  # qdq | qoperator
    per_channel: bool = True
    # 7-bit weights: on x86 without VNNI, u8 x s8 products are summed in pairs into int16
    # (vpmaddubsw), which can saturate; one bit less of weight range avoids it.
    reduce_range: bool = False
    # Op types whose weights get per-channel scales when per_channel is on; None = every op ORT
    # quantizes per channel. NNAPI takes per-channel weights for Conv only (its FULLY_CONNECTED
    # has no per-channel operand type), so a mobile build keeps Gemm/MatMul per tensor.
    per_channel_ops: tuple[str, ...] | None = None
    tag: str = ""  # appended to the name, to tell settings of another target apart
    # Nodes left in fp32 by placement (a conv with 1-3 input channels runs slower in int8 than
    # in fp32 on x86: too little work per output to amortize quantizing its input).
    keep_float: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return (self._base_name + (f"-{self.tag}" if self.tag else "")
                + ("+fp32-narrow" if self.keep_float else ""))

    @property
    def _base_name(self) -> str:
        suffix = "-w7" if self.reduce_range else ""
        if self.mode == "dynamic":
            return f"dynamic-{self.fmt}-w8" if not suffix else f"dynamic-{self.fmt}{suffix}"
        act = "u8" if self.activation_type == "uint8" else "s8"
        return f"{self.fmt}-{act}s8{suffix}"


class _Reader:
    """ORT's calibration protocol (`get_next() -> feed | None`) over a seeded train sample, with
    `set_range` so ORT can consume it stride by stride."""

    def __init__(self, input_name: str | None, x: np.ndarray | dict[str, np.ndarray], batch: int):
        # A model with several inputs (a text encoder's ids and mask) passes them by name.
        arrays = x if isinstance(x, dict) else {input_name: x}
        n = len(next(iter(arrays.values())))
        self.batches = [{k: np.ascontiguousarray(v[i : i + batch]) for k, v in arrays.items()}
                        for i in range(0, n, batch)]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.batches[start_index:end_index])

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self.set_range(0, len(self.batches))

    def __iter__(self):
        # onnxruntime's qdq_loss_debug.collect_activations iterates its reader (for feed in
        # reader) rather than calling get_next: the accuracy-aware search goes through it.
        return iter(self.batches)


def calibration_sample(x_train: np.ndarray, cfg: CalibrationConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.samples, len(x_train))
    return x_train[np.sort(rng.choice(len(x_train), size=n, replace=False))]


def _quiet():
    """ORT's quantizer logs per-node chatter at INFO/WARNING; nothing a user can act on."""
    logging.getLogger().setLevel(logging.ERROR)
    return contextlib.redirect_stdout(io.StringIO())


def preprocess(src: Path, dst: Path, symbolic_shapes: bool = True) -> None:
    """ORT's recommended pre-processing: shape inference and graph optimisation (BN folded into
    Conv), so quantization sees the graph the runtime will run. `symbolic_shapes=False` for
    graphs ORT's symbolic shape inference cannot follow (a transformer's dynamic sequence)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with _quiet():
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=not symbolic_shapes)
    except Exception as e:  # ORT raises plain Exceptions from its optimizer
        raise StageError(f"{src}: quantization pre-processing failed: {str(e)[:300]}") from e


class Quantizer:
    """Quantizes one pre-processed float model with a given setting; calibrates once."""

    def __init__(self, float_path: Path, work: Path, calib: CalibrationConfig,
                 x_calib: np.ndarray | dict[str, np.ndarray], input_name: str | None):
        self.float_path, self.work, self.calib = float_path, work, calib
        self.reader = _Reader(input_name, x_calib, calib.batch_size)
        self.cache = work / "calibration.json"

    def _calibration_args(self) -> dict:
        from onnxruntime.quantization import CalibrationMethod

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[self.calib.method]
        n = len(self.reader)
        # ORT requires the stride to divide the number of batches.
        stride = max(d for d in range(1, min(n, self.calib.stride_batches) + 1) if n % d == 0)
        extra = {"CalibStridedMinMax": stride}
        if self.calib.method == "percentile":
            extra["CalibPercentile"] = self.calib.percentile
        return {"calibrate_method": method, "extra_options": extra}

    def _per_tensor_overrides(self, setting: Setting) -> dict:
        """ORT's TensorQuantOverrides forcing one symmetric scale on the weights of the op types
        that `setting.per_channel_ops` leaves out."""
        if not setting.per_channel or setting.per_channel_ops is None:
            return {}
        return {w: [{"symmetric": True}]
                for w in _weights_of(self.float_path, setting.per_channel_ops)}

    def quantize(self, setting: Setting, out: Path, exclude: list[str] = (),
                 op_types: list[str] | None = None) -> Path:
        """`setting` applied to the float model, written to `out`; `exclude` names nodes left in
        float, `op_types` (None = ORT's default set) the op types quantized at all."""
        import onnx
        from onnxruntime.quantization import (
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        exclude = [*setting.keep_float, *exclude]
        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        fmt = QuantFormat.QDQ if setting.fmt == "qdq" else QuantFormat.QOperator
        try:
            with _quiet():
                if setting.mode == "dynamic":
                    quantize_dynamic(str(self.float_path), str(out),
                                     per_channel=setting.per_channel, weight_type=QuantType.QInt8,
                                     reduce_range=setting.reduce_range,
                                     nodes_to_exclude=list(exclude) or None,
                                     op_types_to_quantize=op_types,
                                     # ORT's shape inference leaves the outputs of contrib ops
                                     # (a fused Attention) untyped: they are float.
                                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
                else:
                    self.reader.rewind()
                    args = self._calibration_args()
                    overrides = self._per_tensor_overrides(setting)
                    if overrides:
                        args["extra_options"] = {**args["extra_options"],
                                                 "TensorQuantOverrides": overrides}
                    quantize_static(
                        str(self.float_path), str(out), self.reader, quant_format=fmt,
                        per_channel=setting.per_channel, reduce_range=setting.reduce_range,
                        activation_type=types[setting.activation_type],
                        weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude) or None,
                        op_types_to_quantize=op_types, calibrate_method=args["calibrate_method"],
                        extra_options=args["extra_options"],
                        calibration_cache_path=str(self.cache),
                    )
        except StageError:
            raise
        except Exception as e:
            raise StageError(f"ORT quantization ({setting.name}) failed: {str(e)[:300]}") from e
        return out


def _weights_of(path: Path, skip_ops: tuple[str, ...]) -> list[str]:
    import onnx

    graph = onnx.load(str(path)).graph
    inits = {i.name for i in graph.initializer}
    return [n.input[1] for n in graph.node if n.op_type in _WEIGHTED_OPS
            and n.op_type not in skip_ops and len(n.input) > 1 and n.input[1] in inits]


def node_sensitivity(float_path: Path, qdq_path: Path, x: np.ndarray, input_name: str,
                     work: Path) -> list[dict]:
    """Quantizable nodes of the float model, most damaged by quantization first.

    Per node: the signal-to-quantization-noise ratio (dB) of its output in the QDQ model against
    the float model (ORT's `qdq_loss_debug`), following a fused Relu/Clip to the tensor that is
    actually quantized. Low SQNR = the node's output carries the most int8 error.
    """
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as dbg

    f_aug, q_aug = work / "float_aug.onnx", work / "qdq_aug.onnx"
    with _quiet():
        dbg.modify_model_output_intermediate_tensors(str(float_path), str(f_aug))
        dbg.modify_model_output_intermediate_tensors(str(qdq_path), str(q_aug))
        f_act = dbg.collect_activations(str(f_aug), _Reader(input_name, x, len(x)))
        q_act = dbg.collect_activations(str(q_aug), _Reader(input_name, x, len(x)))
    errors = dbg.compute_activation_error(dbg.create_activation_matching(q_act, f_act))
    graph = onnx.load(str(float_path)).graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    ranked = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul", "Add"):
            continue
        tensor = node.output[0]
        nxt = consumers.get(tensor, [])
        if tensor not in errors and len(nxt) == 1 and nxt[0].op_type in ("Relu", "Clip"):
            tensor = nxt[0].output[0]
        err = errors.get(tensor, {}).get("xmodel_err")
        if err is None or not math.isfinite(err):
            continue
        ranked.append({"node": node.name, "op": node.op_type, "sqnr_db": round(float(err), 3)})
    ranked.sort(key=lambda r: r["sqnr_db"])
    return ranked


# Ops ORT can run in int8, and the float ops whose weights matter; recurrent ops have an int8
# kernel only for LSTM with dynamic quantization (DynamicQuantizeLSTM); GRU and RNN have none.
RECURRENT_OPS = ("GRU", "LSTM", "RNN")
_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", *RECURRENT_OPS)
_INT8_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger",
             "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "DynamicQuantizeLSTM")


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def int8_ops(path: Path) -> dict[str, dict[str, int]]:
    """{"int8": {op: n}, "float": {op: n}} over the weighted ops of a quantized model: QOperator
    and dynamic int8 ops by type, QDQ ops by whether a DequantizeLinear feeds their weight."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    out: dict[str, dict[str, int]] = {"int8": {}, "float": {}}
    for node in graph.node:
        if node.op_type in _INT8_OPS:
            kind = "int8"
        elif node.op_type in _WEIGHTED_OPS:
            qdq = len(node.input) > 1 and producer.get(node.input[1]) == "DequantizeLinear"
            kind = "int8" if qdq else "float"
        else:
            continue
        out[kind][node.op_type] = out[kind].get(node.op_type, 0) + 1
    return out


def ops_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "none"


def float_note(float_ops: dict[str, int], dynamic: bool) -> str | None:
    """Why recurrent ops stay fp32 in an int8 model, or None when it has none."""
    recurrent = {op: n for op, n in float_ops.items() if op in RECURRENT_OPS}
    if not recurrent:
        return None
    return (f"{ops_text(recurrent)} stay fp32: ONNX Runtime has no int8 kernel for them in "
            f"{'dynamic' if dynamic else 'static QDQ'} quantization (only LSTM, dynamic); the "
            "other weighted ops are int8")
