"""An ONNX teacher run in ONNX Runtime as if it were a frozen PyTorch module (`distill` from a
model that exists only as ONNX; the file is checked first by `compress.onnx.foreign`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class OrtTeacher(nn.Module):
    """A frozen teacher in ONNX Runtime: `forward` gives its logits for the very (augmented)
    batch the student sees, as a tensor on the batch's device. It has no parameters, so it
    cannot take part in hint (feature) distillation."""

    def __init__(self, path: str | Path, threads: int = 0):
        super().__init__()
        from compress.measure import ort as ort_measure

        self.path = Path(path)
        self.session = ort_measure.make_session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().float().cpu().numpy())
        out = self.session.run(None, {self.input_name: feed})[0]
        return torch.from_numpy(out).to(x.device)
