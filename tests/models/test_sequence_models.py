"""rnn and transformer families: shapes for sequence and image inputs, specs that rebuild pruned
layers, and real learning on MNIST-1D (export parity: tests/stages/test_sequence_stages.py)."""

from __future__ import annotations

import pytest
import torch

from compress.errors import ConfigError
from compress.models import build_model, parse_model_spec

GRU = {"arch": "rnn", "cell": "gru", "hidden": 16, "bidirectional": True}
LSTM = {"arch": "rnn", "cell": "lstm", "hidden": 12, "layers": 2, "readout": "mean"}
VIT = {"arch": "transformer", "layers": 1, "width": 16, "heads": 2, "ff": 32, "patch": 4,
       "kernel": 6, "pooling": "cls", "positions": "sinusoidal"}


@pytest.fixture(scope="module")
def mnist1d_small():
    from compress.data import load_dataset
    from compress.data.mnist1d import Mnist1dData

    return load_dataset(Mnist1dData(num_samples=1500, seed=0))


VIT_MEAN = {"arch": "transformer", "layers": 2, "width": 8, "heads": 4, "ff": 8,
            "positions": "learned"}


@pytest.mark.parametrize("shape", [[1, 40], [1, 8, 8], [3, 16]])
@pytest.mark.parametrize("spec", [GRU, LSTM, VIT, VIT_MEAN], ids=["gru", "lstm", "vit", "vit-mean"])
def test_sequence_models_build_for_sequences_and_images(spec, shape):
    # execute
    model = build_model(spec, shape, 7).eval()
    out = model(torch.randn(3, *shape))
    # assert
    assert out.shape == (3, 7) and torch.isfinite(out).all()


def test_rnn_reads_the_last_axis_as_time():
    # setup: a step-reversed input changes a one-directional GRU's answer
    torch.manual_seed(0)
    model = build_model({"arch": "rnn", "hidden": 8}, [2, 10], 3).eval()
    x = torch.randn(4, 2, 10)
    # execute / assert
    assert model.rnn.input_size == 2
    assert not torch.allclose(model(x), model(x.flip(-1)))


def test_transformer_tokens_follow_patch_and_kernel():
    # execute
    vit = build_model({**VIT, "pooling": "mean"}, [1, 40], 10)
    conv_stem = build_model({**VIT, "pooling": "cls", "patch": 2, "kernel": 5}, [1, 40], 10)
    # assert: 40 / 4 = 10 tokens; 40 / 2 = 20 tokens plus [CLS]
    assert vit.pos.shape == (1, 10, 16) and conv_stem.pos.shape == (1, 21, 16)


def test_pruned_transformer_spec_rebuilds_the_same_layers():
    # setup
    spec = parse_model_spec({**VIT, "blocks": [{"heads": 1, "ff": 8}]})
    # execute
    model = build_model(spec, [1, 40], 10)
    # assert: one head of width 16 / 2 = 8 and 8 feed-forward neurons
    assert model.layers[0].attn.qkv.out_features == 3 * 8
    assert model.layers[0].ff.fc1.out_features == 8


@pytest.mark.parametrize("spec", [{**GRU, "readout": "mean", "hidden": 32}, VIT],
                         ids=["gru", "vit"])
def test_sequence_models_learn_mnist1d(spec, mnist1d_small):
    # setup
    from compress.trainer.training import TrainOptions, fit

    torch.manual_seed(0)
    model = build_model(spec, mnist1d_small.input_shape, 10)
    opts = TrainOptions(epochs=3, batch_size=32, lr=1e-2, device="cpu", patience=None)
    # execute
    result = fit(model, mnist1d_small, opts)
    # assert: training loss falls and the model beats chance (10 %) on held-out data
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.9 * losses[0]
    assert result.best_val_accuracy_pct > 20


@pytest.mark.parametrize("spec,shape,needle", [
    ({**VIT, "patch": 50, "kernel": None}, [1, 40],
     "patch/kernel 50 is longer than the 40-step input"),
    (GRU, [64], "rnn reads sequences"),
])
def test_sequence_models_refuse_inputs_they_cannot_read(spec, shape, needle):
    with pytest.raises(ConfigError, match=needle):
        build_model(spec, shape, 10)


def test_transformer_kernel_shorter_than_patch_is_refused():
    with pytest.raises(ValueError, match=r"kernel \(2\) must be >= patch \(4\)"):
        parse_model_spec({**VIT, "patch": 4, "kernel": 2})
