"""compress/onnx/mobile.py: fixing shapes without a second export, and onnxruntime's mobile
usability checker as data, on hand-made graphs (no training)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compress.errors import ConfigError, StageError
from compress.onnx.mobile import (
    check_usability,
    contrib_ops,
    finish_mobile,
    fix_input_shape,
    fixed_shape,
)


def _model(path, op: str, domain: str = ""):
    """x[N, 4] -> Gemm (NNAPI runs it) -> `op` -> y[N, 4], with a dynamic batch axis."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
             helper.make_node(op, ["h"], ["y"], domain=domain)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_fixing_the_shape_keeps_the_outputs_and_lets_nnapi_run_the_nodes(tmp_path):
    # setup
    dynamic = _model(tmp_path / "dyn.onnx", "Relu")
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    # execute
    before = check_usability(dynamic)
    metrics, meta = finish_mobile(dynamic, tmp_path / "fixed.onnx", [1, 4], x, "s")
    # assert
    graph = onnx.load(str(tmp_path / "fixed.onnx")).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 4]
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [1, 4]
    assert before["eps"]["nnapi"]["nodes_supported"] == 0  # dynamic batch: nothing on NNAPI
    assert metrics["nnapi_node_share"] == 1.0 and metrics["nnapi_partitions"] == 1
    assert metrics["fixed_shape_max_abs_diff"] == 0.0 and metrics["contrib_ops"] == 0
    assert meta["usability"]["eps"]["nnapi"]["suitability"] == "YES"


def test_an_op_no_mobile_ep_runs_is_reported_not_raised(tmp_path):
    # setup
    model = _model(tmp_path / "hardmax.onnx", "Hardmax")
    x = np.ones((3, 4), np.float32)
    # execute
    metrics, meta = finish_mobile(model, tmp_path / "fixed.onnx", [1, 4], x, "s")
    # assert
    for ep in ("nnapi", "coreml_mlprogram", "coreml_neuralnetwork"):
        assert metrics[f"{ep}_unsupported_ops"] == "ai.onnx:Hardmax"
        assert metrics[f"{ep}_nodes_supported"] == 1 and metrics[f"{ep}_nodes_total"] == 2
    assert "operator not supported" in meta["usability"]["eps"]["nnapi"]["why_unsupported"][0]


def test_contrib_ops_are_refused_in_a_build_and_reported_in_a_given_model(tmp_path, capsys):
    # setup
    model = _model(tmp_path / "gelu.onnx", "Gelu", domain="com.microsoft")
    x = np.ones((2, 4), np.float32)
    # execute / assert
    assert contrib_ops(model) == ["com.microsoft:Gelu"]
    with pytest.raises(StageError, match="contrib ops"):
        finish_mobile(model, tmp_path / "a.onnx", [1, 4], x, "s")
    metrics, _ = finish_mobile(model, tmp_path / "b.onnx", [1, 4], x, "s", given=True)
    assert metrics["contrib_ops"] == 1 and "com.microsoft:Gelu" in metrics["nnapi_unsupported_ops"]
    assert "warning" in capsys.readouterr().err


def test_a_shape_that_does_not_fit_is_one_line_naming_the_field(tmp_path):
    # setup
    from compress.onnx.mobile import TargetOptions

    opts = TargetOptions(target="mobile", input_shape=[1, 1, 9, 9])
    # execute / assert
    with pytest.raises(StageError, match=r"input_shape: \[1, 1, 9, 9\] does not fit") as e:
        fixed_shape(opts, [1, 8, 8], "student_int8_mobile")
    assert "\n" not in str(e.value) and "student_int8_mobile" in str(e.value)
    assert fixed_shape(TargetOptions(target="mobile"), [1, 8, 8], "s") == [1, 1, 8, 8]
    with pytest.raises(StageError, match="Rank mismatch"):
        fix_input_shape(_model(tmp_path / "m.onnx", "Relu"), tmp_path / "o.onnx", [1, 4, 1])


def test_input_shape_without_target_mobile_is_refused_at_load_time(tmp_path):
    # setup
    from compress.config import parse_pipeline

    raw = {"name": "p", "data": {"source": "digits"}, "stages": [
        {"id": "t", "stage": "train", "model": {"arch": "mlp"}, "epochs": 1},
        {"id": "e", "stage": "export", "input": "t", "input_shape": [1, 1, 8, 8]}]}
    # execute / assert
    with pytest.raises(ConfigError, match="input_shape"):
        parse_pipeline(raw, "p.yaml")
