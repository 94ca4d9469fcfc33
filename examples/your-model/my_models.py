"""A model of the kind edge deployments use, written in plain PyTorch (no torchvision): a
MobileNetV2-style CNN of inverted-residual blocks (1x1 expand -> 3x3 depthwise -> 1x1 project,
with a residual add where shapes allow). compress knows nothing of this file; the pipeline names
`my_models:build_student` and runs with --trust-code.
"""

from __future__ import annotations

from torch import nn


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            conv_bn(cin, hidden),                                   # expand
            conv_bn(hidden, hidden, 3, stride, groups=hidden),      # depthwise
            conv_bn(hidden, cout, act=False),                       # linear bottleneck
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetStyle(nn.Module):
    """stem -> inverted residual blocks -> 1x1 conv -> global pool -> linear classifier."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16,
                 expand: int = 4, last: int = 64, dropout: float = 0.1,
                 blocks: tuple = ((16, 1), (24, 2), (24, 1), (32, 1))):
        super().__init__()
        self.stem = conv_bn(in_channels, width, 3)
        layers, cin = [], width
        for cout, stride in blocks:
            layers.append(InvertedResidual(cin, cout, stride, expand))
            cin = cout
        self.blocks = nn.Sequential(*layers)
        self.features = conv_bn(cin, last)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):
        x = self.features(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(self.pool(x)))


def build_student(num_classes: int = 10, width: int = 16, expand: int = 4, last: int = 64):
    """The factory the pipeline names: keyword arguments only, returns the module."""
    return MobileNetStyle(num_classes, width=width, expand=expand, last=last)
