"""A torchvision-layout MobileNetV2 state dict of random tensors, and a functional forward pass
written from torchvision's architecture that reads those tensors by name: the reference our
module is checked against, with no torchvision and no 14 MB file."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
            [6, 160, 3, 2], [6, 320, 1, 1]]


def _div(v: float) -> int:
    new = max(8, int(v + 4) // 8 * 8)
    return new + 8 if new < 0.9 * v else new


def blocks(width_mult: float, in_ch: int = 3):
    """[(kind, prefix, cin, cout, stride, groups/expand)] in torchvision's order."""
    out, cin = [("cbr", "features.0", in_ch, _div(32 * width_mult), 2, 1, 3)], _div(32 * width_mult)
    i = 1
    for t, c, n, s in SETTINGS:
        cout = _div(c * width_mult)
        for r in range(n):
            out.append(("ir", f"features.{i}", cin, cout, s if r == 0 else 1, t, 3))
            cin, i = cout, i + 1
    out.append(("cbr", f"features.{i}", cin, _div(1280 * max(1.0, width_mult)), 1, 1, 1))
    return out


def state_dict(width_mult: float = 0.25, classes: int = 1000, in_ch: int = 3,
               seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name, cout, cin, k):
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** .5

    def bn(name, c):
        sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = 1 + 0.1 * torch.rand(c, generator=g)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(7)

    last = 0
    for kind, p, cin, cout, _stride, t, k in blocks(width_mult, in_ch):
        if kind == "cbr":
            conv(f"{p}.0", cout, cin, k)
            bn(f"{p}.1", cout)
            last = cout
            continue
        hidden, j = cin * t, 0
        if t != 1:
            conv(f"{p}.conv.0.0", hidden, cin, 1)
            bn(f"{p}.conv.0.1", hidden)
            j = 1
        conv(f"{p}.conv.{j}.0", hidden, 1, 3)
        bn(f"{p}.conv.{j}.1", hidden)
        conv(f"{p}.conv.{j + 1}", cout, hidden, 1)
        bn(f"{p}.conv.{j + 2}", cout)
    sd["classifier.1.weight"] = 0.05 * torch.randn(classes, last, generator=g)
    sd["classifier.1.bias"] = 0.05 * torch.randn(classes, generator=g)
    return sd


def reference_forward(sd: dict, x: torch.Tensor, width_mult: float = 0.25) -> torch.Tensor:
    """Eval-mode MobileNetV2 as torchvision computes it, from the tensors alone."""
    def bn(h, name):
        return F.batch_norm(h, sd[f"{name}.running_mean"], sd[f"{name}.running_var"],
                            sd[f"{name}.weight"], sd[f"{name}.bias"], False, 0.0, 1e-5)

    def cbr(h, name, stride=1, groups=1):
        w = sd[f"{name}.0.weight"]
        h = F.conv2d(h, w, stride=stride, padding=(w.shape[-1] - 1) // 2, groups=groups)
        return F.relu6(bn(h, f"{name}.1"))

    for kind, p, cin, cout, stride, t, _k in blocks(width_mult, x.shape[1]):
        if kind == "cbr":
            x = cbr(x, p, stride)
            continue
        h, j = x, 0
        if t != 1:
            h, j = cbr(h, f"{p}.conv.0"), 1
        h = cbr(h, f"{p}.conv.{j}", stride, groups=h.shape[1])
        h = bn(F.conv2d(h, sd[f"{p}.conv.{j + 1}.weight"]), f"{p}.conv.{j + 2}")
        x = x + h if stride == 1 and cin == cout else h
    x = x.mean((2, 3))
    return F.linear(x, sd["classifier.1.weight"], sd["classifier.1.bias"])
