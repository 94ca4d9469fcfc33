"""Feed-forward network: flatten, then Linear -> (BatchNorm) -> ReLU -> Dropout per hidden layer."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn


class MlpSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(
        default_factory=lambda: [256, 128], min_length=1, description="units per hidden layer"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden Linear")


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
