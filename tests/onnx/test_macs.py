"""MACs counted from the ONNX graph, by the precision ORT runs them in."""

from __future__ import annotations

import pytest

from compress.onnx.macs import count_macs
from compress.onnx.quantization import CalibrationConfig, Quantizer, Setting
from tests.onnx.graphs import calibration_batch, small_cnn

SMALL_CNN_MACS = 8 * 64 * 9 + 16 * 64 * 72 + 16 * 10  # conv1 + conv2 + head = 78,496


@pytest.mark.parametrize("fmt", ["float", "qoperator", "qdq"])
def test_macs_are_counted_per_precision(tmp_path, fmt):
    # setup
    path = small_cnn(tmp_path / "f.onnx")
    if fmt != "float":
        q = Quantizer(path, tmp_path, CalibrationConfig(), calibration_batch(), "input")
        path = q.quantize(Setting("static", "uint8", fmt), tmp_path / f"{fmt}.onnx")
    # execute
    macs = count_macs(path, [1, 8, 8])
    # assert: the same arithmetic, in fp32 or int8 (QDQ convs count as int8: ORT fuses them)
    want = "fp32" if fmt == "float" else "int8"
    assert macs == {"fp32": 0, "int8": 0} | {want: SMALL_CNN_MACS}
