"""Residual CNN with batch norm, 1-D (N, C, L) or 2-D (N, C, H, W) by the input's rank.

stem conv -> stages of basic blocks (conv-BN-ReLU-conv-BN + shortcut) -> global average pool ->
dropout -> linear. The first block of every stage after the first halves the resolution. The
`stem`/`blocks` fields hold explicit channel counts, which is how pruned models are described.
"""

from __future__ import annotations

import torch
from torch import nn

from compress.errors import ConfigError
from compress.models.specs import ResBlockSpec, ResNetSpec  # noqa: F401  (re-exported)


def _layers(dims: int):
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d
    return nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d


class BasicBlock(nn.Module):
    def __init__(self, cin: int, spec: ResBlockSpec, kernel: int, dims: int):
        super().__init__()
        conv, bn, _ = _layers(dims)
        pad = kernel // 2
        self.conv1 = conv(cin, spec.mid, kernel, stride=spec.stride, padding=pad, bias=False)
        self.bn1 = bn(spec.mid)
        self.conv2 = conv(spec.mid, spec.out, kernel, padding=pad, bias=False)
        self.bn2 = bn(spec.out)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        projection = spec.projection
        if projection is None:
            projection = spec.stride != 1 or cin != spec.out
        if projection:
            self.shortcut = nn.Sequential(
                conv(cin, spec.out, 1, stride=spec.stride, bias=False), bn(spec.out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, spec: ResNetSpec, input_shape: list[int], num_classes: int):
        super().__init__()
        dims = len(input_shape) - 1
        if dims not in (1, 2):
            raise ConfigError(f"model: resnet convolves sequences or images, (C, L) or (C, H, W) "
                              f"inputs, but the data gives {input_shape} (a table, layout NF); "
                              "use mlp for tables, or give x as (N, C, L)")
        conv, bn, pool = _layers(dims)
        stem, blocks = spec.layout()
        k = spec.kernel_size
        self.stem = nn.Sequential(
            conv(input_shape[0], stem, k, padding=k // 2, bias=False), bn(stem), nn.ReLU()
        )
        layers, cin = [], stem
        for b in blocks:
            layers.append(BasicBlock(cin, b, k, dims))
            cin = b.out
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.Sequential(pool(1), nn.Flatten())
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout else nn.Identity()
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(self.blocks(self.stem(x)))))
