"""The export contract on models compress did not build: any argument name, any nn.Module
whose forward takes one tensor; a failed export says why in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compress.errors import StageError
from compress.measure.ort import make_session, predict
from compress.onnx.contract import export_error_summary, export_onnx


def _separable(width: int = 8) -> nn.Sequential:
    # nn.Sequential's forward argument is called `input`, not `x`
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=width), nn.Conv2d(width, 2 * width, 1),
        nn.BatchNorm2d(2 * width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2 * width, 10)).eval()


class ImagesNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, images):
        return self.fc(images.flatten(1))


class DataDependent(nn.Module):
    """Branches on a value: torch.export cannot trace it."""

    def forward(self, x):
        if x.sum() > 0:
            return x.flatten(1)[:, :10]
        return -x.flatten(1)[:, :10]


@pytest.mark.parametrize("make", [_separable, lambda: ImagesNet().eval()],
                         ids=["sequential-input", "forward-images"])
def test_a_module_exports_whatever_its_argument_is_called(make, tmp_path):
    # setup
    torch.manual_seed(0)
    model = make()
    x = np.random.default_rng(0).normal(size=(7, 1, 8, 8)).astype(np.float32)
    # execute
    export_onnx(model, torch.as_tensor(x[:2]), tmp_path / "m.onnx", opset=18)
    # assert: same logits as PyTorch, at a batch size other than the example's
    with torch.no_grad():
        want = model(torch.as_tensor(x)).numpy()
    got = predict(make_session(tmp_path / "m.onnx", threads=1), x)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def test_a_failed_export_is_one_line_with_torchs_summary_of_the_cause(tmp_path):
    # execute
    with pytest.raises(StageError) as exc:
        export_onnx(DataDependent(), torch.ones(2, 1, 8, 8), tmp_path / "m.onnx", opset=18)
    # assert: the cause, not the exporter's "step 1/3 ... Next steps:" preamble
    msg = str(exc.value)
    assert "\n" not in msg and "\x1b" not in msg
    assert "Next steps" not in msg and "data-dependent" in msg.lower(), msg
    assert not (tmp_path / "m.onnx").exists()


def test_the_summary_falls_back_to_the_first_line():
    # execute / assert
    assert export_error_summary(ValueError("bad shape\nmore")) == "ValueError: bad shape"
    long = export_error_summary(RuntimeError("x" * 1000), limit=50)
    assert len(long) == 50 and long.endswith("...")
