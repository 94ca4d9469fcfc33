"""Feed-forward network: flatten, then Linear -> (BatchNorm) -> ReLU -> Dropout per hidden layer."""

from __future__ import annotations

import math

import torch
from torch import nn

from compress.models.specs import MlpSpec  # noqa: F401  (re-exported)


class MLP(nn.Module):
    def __init__(self, spec: MlpSpec, input_shape: list[int], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for units in spec.hidden:
            layers.append(nn.Linear(width, units))
            if spec.batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(nn.ReLU())
            if spec.dropout:
                layers.append(nn.Dropout(spec.dropout))
            width = units
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
