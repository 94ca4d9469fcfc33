"""Recurrent classifier (GRU or LSTM) over a sequence input.

An input (N, C, L) is read as L steps of C features (MNIST-1D: 40 steps x 1 feature); a 2-D input
(N, C, H, W) as W steps of C*H features (digits: 8 columns of 8 pixels). The readout is the last
hidden state (both directions' final states when bidirectional) or the mean over steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from compress.errors import ConfigError
from compress.models.specs import RnnSpec  # noqa: F401  (re-exported)


def as_sequence(x: torch.Tensor) -> torch.Tensor:
    """(N, C, L) or (N, C, H, W) -> (N, steps, features): the last axis is time."""
    return x.reshape(x.shape[0], -1, x.shape[-1]).transpose(1, 2)


class RNN(nn.Module):
    # Its 3-D features are (batch, steps, features): hints transpose them (distillation).
    steps_first_features = True

    def __init__(self, spec: RnnSpec, input_shape: list[int], num_classes: int):
        super().__init__()
        if len(input_shape) < 2:
            raise ConfigError(f"model: rnn reads sequences, (C, L) or (C, H, W) inputs, but the "
                              f"data gives {input_shape}; use mlp for flat features")
        cls = nn.GRU if spec.cell == "gru" else nn.LSTM
        self.readout = spec.readout
        self.dirs = 2 if spec.bidirectional else 1
        self.rnn = cls(math.prod(input_shape[:-1]), spec.hidden, num_layers=spec.layers,
                       batch_first=True, bidirectional=spec.bidirectional,
                       dropout=spec.dropout if spec.layers > 1 else 0.0)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout else nn.Identity()
        self.head = nn.Linear(spec.hidden * self.dirs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, state = self.rnn(as_sequence(x))
        if self.readout == "mean":
            feat = out.mean(dim=1)
        else:
            h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
            # h: (layers * dirs, N, hidden); the top layer's directions, side by side.
            feat = h[-self.dirs:].transpose(0, 1).reshape(x.shape[0], -1)
        return self.head(self.dropout(feat))
