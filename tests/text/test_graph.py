"""compress.text.graph: the unfused-LayerNorm rewrite computes the same embeddings and is left
alone by ONNX Runtime's SkipLayerNormalization fusion under its default session options."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from compress.text.graph import unfuse_skip_layernorm


@pytest.fixture(scope="module")
def exported(tiny_bert_dir, tmp_path_factory):
    from compress.text.encoder import load_pretrained
    from compress.text.export import export_encoder

    path = tmp_path_factory.mktemp("graph") / "model.onnx"
    export_encoder(load_pretrained(tiny_bert_dir), path, 18, 128)
    return path


def ort_optimized_ops(path, tmp_path) -> set[str]:
    """Op types of the graph ONNX Runtime runs, with its default (all) optimisations."""
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / f"optimized-{path.name}")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return {n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node}


def test_unfused_graph_gives_the_same_embeddings_without_skip_layernorm(exported, tmp_path):
    # setup
    model = onnx.load(str(exported))
    layers = 3  # the tiny BERT's
    rng = np.random.default_rng(0)
    feeds = []
    for batch, seq in ((1, 7), (3, 128)):
        ids = rng.integers(1000, 30000, (batch, seq)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[-1, seq // 3:] = 0
        feeds.append({"input_ids": ids, "attention_mask": mask})
    # execute
    count = unfuse_skip_layernorm(model)
    unfused = tmp_path / "unfused.onnx"
    onnx.save(model, str(unfused))
    onnx.checker.check_model(str(unfused), full_check=True)
    # assert: the embeddings' LayerNorm and both residual ones per layer
    assert count == 1 + 2 * layers
    assert "SkipLayerNormalization" in ort_optimized_ops(exported, tmp_path)
    assert "SkipLayerNormalization" not in ort_optimized_ops(unfused, tmp_path)
    before = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(unfused), providers=["CPUExecutionProvider"])
    for feed in feeds:
        np.testing.assert_allclose(after.run(None, feed)[0], before.run(None, feed)[0],
                                   atol=1e-5)


def test_graph_without_add_then_layernorm_is_left_as_is():
    from onnx import TensorProto, helper

    # setup: LayerNormalization straight on a graph input
    graph = helper.make_graph(
        [helper.make_node("LayerNormalization", ["x", "g"], ["y"], axis=-1)], "ln",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor("g", TensorProto.FLOAT, [4], [1.0] * 4)])
    model = helper.make_model(graph)
    # execute / assert
    assert unfuse_skip_layernorm(model) == 0
    assert [n.op_type for n in model.graph.node] == ["LayerNormalization"]
