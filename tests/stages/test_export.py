"""Stage `export`: valid ONNX, dynamic batch, parity with PyTorch, contract in metadata."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from compress.errors import ParityError
from compress.measure.ort import make_session, read_metadata
from compress.onnx.contract import check_parity


def test_onnx_is_valid_with_a_dynamic_batch(tiny_onnx):
    # execute
    model = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(model, full_check=True)
    session = make_session(tiny_onnx, threads=1)
    # assert
    inp = model.graph.input[0]
    assert inp.name == "input" and model.graph.output[0].name == "logits"
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert model.opset_import[0].version == 18
    for n in (1, 5, 33):
        out = session.run(None, {"input": np.zeros((n, 1, 8, 8), np.float32)})[0]
        assert out.shape == (n, 10)


def test_metadata_carries_the_contract(tiny_onnx, tiny_run):
    # execute
    meta = read_metadata(tiny_onnx)
    # assert
    assert meta["compress.input"] == {"name": "input", "shape": ["batch", 1, 8, 8],
                                      "dtype": "float32"}
    assert meta["compress.preprocessing"]["layout"] == "NCHW"
    assert meta["compress.class_labels"] == [str(i) for i in range(10)]
    assert meta["compress.source"]["pipeline"] == "tiny"
    assert set(meta["compress.versions"]) >= {"torch", "onnx", "onnxruntime", "compress"}
    metrics = tiny_run[1].manifest["stages"]["teacher_onnx"]["metrics"]
    assert meta["compress.metrics"]["ort_test_accuracy_pct"] == metrics["ort_test_accuracy_pct"]


def test_ort_accuracy_matches_torch(tiny_run):
    m = tiny_run[1].manifest["stages"]["teacher_onnx"]["metrics"]
    assert m["parity_max_abs_diff"] < 1e-4
    assert abs(m["ort_test_accuracy_pct"] - m["torch_test_accuracy_pct"]) <= 100 / 360


def test_parity_error_names_the_largest_difference():
    # setup
    a = np.zeros((4, 3), np.float32)
    b = a.copy()
    b[2, 1] = 0.5
    # execute / assert
    with pytest.raises(ParityError) as exc:
        check_parity(a, b, atol=1e-4, rtol=1e-3)
    msg = str(exc.value)
    assert "max |diff| 0.5" in msg and "sample 2, class 1" in msg
    assert check_parity(a, a + 1e-6, atol=1e-4, rtol=1e-3) == pytest.approx(1e-6)
