"""Cascading randomization (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018):
the teacher's architecture with its layers re-initialized one group at a time, from the output
down to the input. An attribution method that gives the same maps for these models as for the
trained one does not explain the trained one.

A group is a top-level layer of the model, or one block of a top-level sequence of blocks
(ResNet: stem, blocks.0, blocks.1, ..., head). Re-initialized weights (and batch-norm
statistics) are those of a freshly built model of the same spec, seeded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from compress.models import build_model

RANDOM_SEED_OFFSET = 1_000_003


def cascade_groups(model: nn.Module) -> list[str]:
    """Module names of the layer groups that hold parameters, input side first."""
    groups = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        if isinstance(child, nn.Sequential | nn.ModuleList) and any(
                any(True for _ in c.children()) for c in child.children()):
            groups += [f"{name}.{sub}" for sub, c in child.named_children()
                       if any(True for _ in c.parameters())]
        else:
            groups.append(name)
    return groups


@dataclass
class RandomizedModel:
    """One step of the cascade: the groups re-initialized so far (top first) and the model."""

    level: int  # 1 = only the output layer re-initialized
    groups: list[str]
    model: nn.Module

    @property
    def label(self) -> str:
        return f"randomized top {self.level}: {', '.join(self.groups)}"


def cascade(ckpt: dict, trained: nn.Module, seed: int, levels: int | None = None
            ) -> list[RandomizedModel]:
    """The cascade, from the output layer alone to every layer re-initialized.

    Args:
        ckpt: the teacher's checkpoint (its spec rebuilds a fresh model for the new weights).
        trained: the teacher, loaded from `ckpt`.
        seed: seeds the fresh weights.
        levels: keep this many steps, spread evenly over the cascade and always including the
            first (output layer only) and the last (every layer); None = every step.
    """
    # Offset: the training stages seed torch with the pipeline's small seeds, and a fresh init
    # with the training seed is the teacher's own starting point (after a short training its
    # output layer has barely left it, and the "randomized" maps match the trained ones).
    torch.manual_seed(RANDOM_SEED_OFFSET + seed)
    fresh = build_model(ckpt["model"], ckpt["input_shape"], ckpt["num_classes"]).eval()
    fresh_state = fresh.state_dict()
    top_first = list(reversed(cascade_groups(trained)))
    steps = list(range(1, len(top_first) + 1))
    if levels is not None and levels < len(steps):
        picks = {round(i * (len(steps) - 1) / max(levels - 1, 1)) for i in range(levels)}
        steps = [steps[i] for i in sorted(picks)]
    out = []
    for level in steps:
        groups = top_first[:level]
        model = copy.deepcopy(trained)
        state = model.state_dict()
        for key in state:
            if any(key == g or key.startswith(g + ".") for g in groups):
                state[key] = fresh_state[key].clone()
        model.load_state_dict(state)
        out.append(RandomizedModel(level, groups, model.eval()))
    return out


def export_randomized(models: list[RandomizedModel], example: torch.Tensor, folder: Path,
                      opset: int = 18) -> list[Path]:
    """Export every randomized model to `folder/randomized_<level>.onnx` (ONNX Runtime then
    explains them with the same code as every other model), each checked against PyTorch.

    These are throw-away references, so they go through torch's TorchScript exporter: about
    ten times faster per model than the torch.export path `compress export` uses.
    """
    import contextlib
    import io
    import warnings

    from compress.measure.ort import make_session
    from compress.onnx.contract import INPUT_NAME, OUTPUT_NAME, check_parity

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in models:
        path = folder / f"randomized_{m.level}.onnx"
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m.model, (example,), str(path), dynamo=False,
                              opset_version=opset, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}})
        with torch.no_grad():
            want = m.model(example).numpy()
        got = make_session(path, threads=1).run(None, {INPUT_NAME: example.numpy()})[0]
        check_parity(want, got, atol=1e-3, rtol=1e-3)
        paths.append(path)
    return paths
