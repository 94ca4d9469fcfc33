"""Stage `import` and an ONNX-only teacher: foreign ONNX files checked before a run writes
anything, then used like our own exports (quantize, bench, distill)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compress.config import parse_pipeline
from compress.errors import ConfigError
from compress.measure.ort import read_metadata
from compress.runner import run_pipeline

FAST = {"epochs": 1, "batch_size": 128, "lr": 0.01, "device": "cpu", "patience": None}


def _pipeline(onnx_path, extra: list[dict] | None = None) -> dict:
    return {"name": "vendor", "data": {"source": "digits", "seed": 0},
            "stages": [{"id": "vendor", "stage": "import", "onnx": str(onnx_path)},
                       *(extra or [])]}


def _run(raw: dict, out):
    cfg = parse_pipeline(raw, "vendor.yaml")
    return run_pipeline(cfg, out, progress=False, log=lambda m: None)


def _linear_onnx(path, in_shape: list, elem=TensorProto.FLOAT, classes: int = 10) -> None:
    """A one-layer classifier: Flatten -> MatMul, with the given input shape and type."""
    feats = int(np.prod(in_shape[1:]))
    nodes = [helper.make_node("Flatten", ["x"], ["f"])]
    if elem != TensorProto.FLOAT:
        nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
                 helper.make_node("Flatten", ["xf"], ["f"])]
    nodes.append(helper.make_node("MatMul", ["f", "w"], ["y"]))
    w = numpy_helper.from_array(np.ones((feats, classes), np.float32), "w")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             ["N", classes])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_imported_onnx_is_checked_hashed_and_teaches_a_student(tiny_onnx, tmp_path):
    # setup: the tiny teacher's ONNX, as if it came from a vendor
    extra = [{"id": "student", "stage": "distill", "teacher": "vendor",
              "model": {"arch": "mlp", "hidden": [16]}, **FAST},
             {"id": "student_inline", "stage": "distill", "teacher": {"onnx": str(tiny_onnx)},
              "model": {"arch": "mlp", "hidden": [16]}, **FAST},
             {"id": "int8", "stage": "quantize", "input": "vendor",
              "calibration": {"samples": 64}, "select_batch_sizes": [1], "select_time_s": 0.02,
              "format": "qdq", "activation_type": "uint8", "reduce_range": "false"}]
    # execute
    summary = _run(_pipeline(tiny_onnx, extra), tmp_path)
    # assert
    m = summary.manifest["stages"]
    from compress.artifacts import sha256_file

    assert m["vendor"]["metrics"]["source_sha256"] == sha256_file(tiny_onnx)
    meta = read_metadata(summary.root / "vendor" / "model.onnx")
    assert meta["compress.source"]["imported_sha256"] == sha256_file(tiny_onnx)
    for sid in ("student", "student_inline"):
        sm = m[sid]["metrics"]
        assert sm["teacher_runtime"] == "onnxruntime"
        assert sm["teacher_test_accuracy_pct"] == pytest.approx(
            m["vendor"]["metrics"]["test_accuracy_pct"])
        assert sm["test_accuracy_pct"] > 20  # one epoch: well above chance (10 %)
    # same teacher, same seed, same batches: the two ways of naming it give the same student
    assert m["student"]["metrics"]["test_accuracy_pct"] == \
        m["student_inline"]["metrics"]["test_accuracy_pct"]
    assert m["int8"]["metrics"]["int8_weight_fraction"] > 0.5


def _truncated(path, tiny_onnx):
    path.write_bytes(tiny_onnx.read_bytes()[: tiny_onnx.stat().st_size // 2])


BAD = [
    ("truncated", _truncated, "not a valid ONNX model"),
    ("int_input", lambda p, _: _linear_onnx(p, ["N", 1, 8, 8], TensorProto.INT64),
     "needs exactly one float32 input"),
    ("wrong_shape", lambda p, _: _linear_onnx(p, ["N", 1, 4, 4]),
     r"input is shaped \['N', 1, 4, 4\] but the data's samples are \['batch', 1, 8, 8\]"),
    ("fixed_batch", lambda p, _: _linear_onnx(p, [1, 1, 8, 8]), "batch axis is fixed at 1"),
    ("classes", lambda p, _: _linear_onnx(p, ["N", 1, 8, 8], classes=3),
     "must be logits of the data's 10 classes"),
]


@pytest.mark.parametrize("name,make,message", BAD, ids=[b[0] for b in BAD])
def test_bad_foreign_onnx_is_one_line_and_writes_nothing(tiny_onnx, tmp_path, name, make,
                                                         message):
    # setup
    bad = tmp_path / f"{name}.onnx"
    make(bad, tiny_onnx)
    out = tmp_path / "out"
    # execute
    with pytest.raises(ConfigError, match=message) as e:
        _run(_pipeline(bad), out)
    # assert
    assert "stage 'vendor', field 'onnx'" in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()


def test_onnx_teacher_given_inline_is_checked_too(tmp_path):
    # setup
    bad = tmp_path / "t.onnx"
    _linear_onnx(bad, ["N", 1, 4, 4])
    raw = {"name": "t", "data": {"source": "digits"}, "stages": [
        {"id": "student", "stage": "distill", "teacher": {"onnx": str(bad)}, **FAST}]}
    # execute / assert
    with pytest.raises(ConfigError, match="stage 'student', field 'teacher.onnx'"):
        _run(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hint_needs_a_pytorch_teacher():
    # execute / assert
    with pytest.raises(ConfigError, match="hint .*needs a PyTorch teacher"):
        parse_pipeline({"name": "t", "data": {"source": "digits"}, "stages": [
            {"id": "s", "stage": "distill", "teacher": {"onnx": "t.onnx"},
             "hint": {"student_layer": "a", "teacher_layer": "b"}}]}, "t.yaml")
