"""Tiny int8 builds of the tiny digits MLP (tests/conftest.py): a cpu-style QOperator file
(com.microsoft QGemm: OpenVINO has no conversion rule for it) and a QDQ file."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    from compress.data import DigitsData, load_dataset

    return load_dataset(DigitsData())


def _quantize(src, dst, fmt, x):
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rows = iter(x[i : i + 16] for i in range(0, len(x), 16))

        def get_next(self):
            batch = next(self.rows, None)
            return None if batch is None else {"input": batch}

    quantize_static(str(src), str(dst), Reader(), quant_format=fmt, per_channel=True)
    return dst


@pytest.fixture(scope="session")
def int8_models(tmp_path_factory, tiny_onnx, digits):
    """{"fp32", "qoperator", "qdq"}: paths."""
    from onnxruntime.quantization import QuantFormat

    out = tmp_path_factory.mktemp("int8")
    x = np.ascontiguousarray(digits.x_train[:64])
    return {"fp32": tiny_onnx,
            "qoperator": _quantize(tiny_onnx, out / "qop.onnx", QuantFormat.QOperator, x),
            "qdq": _quantize(tiny_onnx, out / "qdq.onnx", QuantFormat.QDQ, x)}
