"""MobileNetV2 (Sandler et al. 2018) in plain PyTorch, laid out module for module like
torchvision's `torchvision.models.mobilenet_v2` (features.N.conv.M..., classifier.1), so that
torchvision's ImageNet state dict loads with `strict=True` (torchvision itself does not import
beside our CPU torch build, and a copy of its layout is all a state dict needs).

stem 3x3 conv (stride 2) -> 17 inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear
projection; a residual where stride 1 and channels agree) -> 1x1 conv to `last_channel` ->
global average pool -> dropout -> linear. Channels are `width_mult` times torchvision's,
rounded to multiples of 8 as torchvision rounds them.
"""

from __future__ import annotations

import torch
from torch import nn

from compress.errors import ConfigError
from compress.models.specs import MobileNetV2Spec  # noqa: F401  (re-exported)

# torchvision's inverted residual settings: expand ratio t, channels c, repeats n, stride s
SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
            [6, 160, 3, 2], [6, 320, 1, 1]]


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's `_make_divisible`: round to a multiple of 8, never below 90 % of v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNReLU(nn.Sequential):
    """conv (0), BatchNorm (1), ReLU6 (2): torchvision's Conv2dNormActivation layout."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, spec: MobileNetV2Spec, input_shape: list[int], num_classes: int):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"model: mobilenet_v2 takes images (C, H, W), but the data gives "
                              f"{input_shape}; use resnet or mlp for sequences and tables")
        cin = make_divisible(32 * spec.width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, spec.width_mult))
        features: list[nn.Module] = [ConvBNReLU(input_shape[0], cin, stride=2)]
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * spec.width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU(cin, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(spec.dropout),
                                        nn.Linear(self.last_channel, num_classes))
        # torchvision's initialisation, so that training from scratch matches it too
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))
