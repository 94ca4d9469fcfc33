"""compress/onnx/portable.py: a QDQ build made portable (standard ops, dynamic batch, opset
19) runs in onnx's reference evaluator as in onnxruntime; a QOperator build is refused."""

from __future__ import annotations

import onnx
import pytest

from compress.errors import StageError
from compress.measure.ort import make_session, predict
from compress.measure.runtimes.check import check_in_runtimes
from compress.onnx.portable import PORTABLE_OPSET, build_portable


def test_a_qdq_build_becomes_opset_19_and_every_runtime_predicts_as_onnxruntime(
        int8_models, digits, tmp_path):
    # setup
    out = tmp_path / "portable.onnx"
    x = digits.x_test[:60]
    # execute
    meta = build_portable(int8_models["qdq"], out, "int8")
    checked = check_in_runtimes(out, x, "int8")
    # assert
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [19]
    assert meta["opset"] == PORTABLE_OPSET and meta["domains"] == ["ai.onnx"]
    assert "DequantizeLinear" in meta["ops"] and "QGemm" not in meta["ops"]
    assert checked["onnx-reference"] == {"checked": True, "version": onnx.__version__,
                                         "agree": 60, "samples": 60}
    assert checked["onnxruntime"]["agree"] == 60
    assert (predict(make_session(out, 1), x).argmax(1)
            == predict(make_session(int8_models["qdq"], 1), x).argmax(1)).all()


def test_a_qoperator_build_is_refused_naming_the_ops(int8_models, tmp_path):
    with pytest.raises(StageError, match=r"not portable \(contrib ops com.microsoft:QGemm"):
        build_portable(int8_models["qoperator"], tmp_path / "p.onnx", "int8")
