"""ORT sessions: a model that does not fit the data is refused with a hint that fits the model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compress.errors import ArtifactError
from compress.measure.ort import check_input_shape, make_session


def test_a_foreign_model_of_other_data_gets_a_hint_about_the_data(tmp_path):
    # setup: a model made elsewhere (no compress metadata) taking 3 features
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    # execute / assert: not "export it from a checkpoint" (there is none)
    with pytest.raises(ArtifactError) as exc:
        check_input_shape(make_session(tmp_path / "m.onnx", 1), [5], tmp_path / "m.onnx")
    msg = str(exc.value)
    assert "model input is ['N', 3] but the data's samples are ['N', 5]; give the data this " \
        "model takes (`--data` on the command line, `data:` in a pipeline)" in msg
    assert "checkpoint" not in msg


def _identity(path, batch):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_fixed_batch_model_timed_at_another_batch_is_one_line(tmp_path):
    # setup: a batch-1 model (as target: mobile builds) and a dynamic-batch one
    from compress.measure.ort import check_fixed_batch

    fixed = _identity(tmp_path / "fixed.onnx", 1)
    dynamic = _identity(tmp_path / "dynamic.onnx", "batch")
    # execute / assert
    check_fixed_batch(fixed, [1], "bench, m")
    check_fixed_batch(dynamic, [1, 64], "bench, m")
    with pytest.raises(ArtifactError, match=r"fixed batch size of 1 and cannot be timed at "
                                            r"batch size\(s\) \[64\].*batch_sizes: \[1\]"):
        check_fixed_batch(fixed, [1, 64], "bench, m")
