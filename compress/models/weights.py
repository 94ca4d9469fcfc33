"""`weights:` for any model family: start a model from a trained state dict (a torchvision-style
`.pth`, or a compress checkpoint's), loaded with `torch.load(weights_only=True)`, so a file
never runs code.

Loading is strict: every key the model has must be in the file with the same shape, and the file
may hold nothing else. One exception, the one fine-tuning needs: the classifier (the model's last
Linear layer) may have another class count, and is then re-initialised, which is said on stderr.
What was loaded (path, sha256, re-initialised keys) goes into the checkpoint; the sha256 also
into the stage's cache key, so a changed file reruns the stage.
"""

from __future__ import annotations

import pickle
import struct
import sys
from pathlib import Path

import torch
from torch import nn

from compress.artifacts import sha256_file
from compress.errors import ArtifactError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, or an ArtifactError saying in one line why not."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: weights file not found; give the path of a .pth state "
                            "dict or a compress model.pt (relative to the pipeline file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise ArtifactError(f"{path}: cannot read the weights (the file is truncated or "
                                "damaged); download or copy it again") from e
        raise ArtifactError(
            f"{path}: torch.load(weights_only=True) refuses it: the file holds pickled Python "
            "objects (a whole nn.Module?), which would run code when loaded; save "
            "model.state_dict() instead") from e
    except (RuntimeError, EOFError, OSError, ValueError, struct.error) as e:
        # both torch formats: a zip archive (torch >= 1.6) or the legacy pickle stream
        raise ArtifactError(f"{path}: cannot read the weights ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:120]}); the file is truncated or damaged: "
                            "download or copy it again") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a compress checkpoint (or a {"state_dict": ...} wrapper)
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ArtifactError(f"{path}: not a state dict (a mapping of names to tensors, as "
                            "model.state_dict() gives); save that instead")
    return obj


def classifier_name(model: nn.Module) -> str | None:
    """The module name of the model's last Linear layer: the classifier fine-tuning replaces."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def _first_conv(model: nn.Module) -> str | None:
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv1d | nn.Conv2d)),
                None)


def load_weights(model: nn.Module, path: str | Path, desc: str = "model",
                 quiet: bool = False) -> dict:
    """Load `path` into `model` (strict but for a classifier of another class count);
    {"path", "sha256", "reinitialised"} for the checkpoint."""
    sd = dict(read_state_dict(path))
    own = model.state_dict()
    # Checkpoints from before BatchNorm counted its batches lack num_batches_tracked; torch's
    # BatchNorm fills it in, as it does for torchvision's older ImageNet files.
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        shown = "; ".join(
            f"{what} {len(keys)} key(s), first '{keys[0]}'"
            for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys)
        raise ArtifactError(f"{path}: the weights do not fit this architecture ({shown}); they "
                            "are another model's: give weights saved from this `arch`")
    head = classifier_name(model)
    head_keys = {f"{head}.weight", f"{head}.bias"} if head else set()
    reinit = []
    for k, v in own.items():
        if k not in sd or sd[k].shape == v.shape:
            continue
        if k in head_keys and sd[k].shape[1:] == v.shape[1:]:
            reinit.append(k)  # another class count: this layer starts afresh
            continue
        theirs, ours = list(sd[k].shape), list(v.shape)
        conv = _first_conv(model)
        if (k == f"{conv}.weight" and len(ours) > 1 and theirs[0] == ours[0]
                and theirs[1] != ours[1]):
            raise ArtifactError(
                f"{path}: the weights take {theirs[1]}-channel inputs but the data has "
                f"{ours[1]} channel(s); set `channels: {theirs[1]}` in data (greyscale is "
                "repeated into every channel)")
        raise ArtifactError(
            f"{path}: '{k}' is {theirs} in the weights but {ours} in the model; the weights are "
            "of another size of this architecture (mobilenet_v2: set width_mult to theirs, 1.0 "
            "for the ImageNet file; others: the widths they were trained with)")
    theirs_classes = int(sd[f"{head}.weight"].shape[0]) if reinit else 0
    for k in reinit:
        del sd[k]
    model.load_state_dict(sd, strict=False)
    if reinit and not quiet:
        print(f"{desc}: {head} re-initialised for {own[f'{head}.weight'].shape[0]} classes (the "
              f"weights have {theirs_classes}); every other layer loaded from {Path(path).name}",
              file=sys.stderr, flush=True)
    return {"path": str(path), "sha256": sha256_file(path), "reinitialised": reinit}


def initial_model(spec, input_shape: list[int], num_classes: int, desc: str = "model"):
    """(model, weights record or None): the family's untrained model, then `spec.weights`."""
    from compress.models import build_model

    model = build_model(spec, input_shape, num_classes)
    if getattr(spec, "weights", None) is None:
        return model, None
    return model, load_weights(model, spec.weights, desc)


def check_weights(spec, data, field: str) -> None:
    """Refuse weights that do not fit the model before the run writes anything."""
    if getattr(spec, "weights", None) is None:
        return
    from compress.models import build_model

    model = build_model(spec, data.input_shape, data.num_classes)
    try:
        load_weights(model, spec.weights, desc="", quiet=True)
    except ArtifactError as e:
        raise ArtifactError(f"field '{field}': {e}") from e
