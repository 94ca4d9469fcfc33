"""The checkpoint format's writer beside its reader: a self-describing payload (model spec with
the real channel counts, state dict, data contract, stage config, metrics) that rebuilds the
model without the code that made it (`torch.load(weights_only=True)`, never unpickled code)."""

from __future__ import annotations

from pathlib import Path

import torch

from compress.errors import ArtifactError
from compress.models import build_model


def model_from_checkpoint(ckpt: dict, path: Path) -> torch.nn.Module:
    try:
        model = build_model(ckpt["model"], ckpt["input_shape"], ckpt["num_classes"])
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, RuntimeError, ValueError) as e:
        raise ArtifactError(
            f"{path}: checkpoint does not rebuild ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}); rerun the stage that made it"
        ) from e
    return model.eval()


def checkpoint_payload(model, spec, data, data_cfg, cfg, metrics) -> dict:
    """The dict every stage that writes a checkpoint saves: enough to rebuild without code."""
    return {
        "model": spec.model_dump(mode="json"),
        "input_shape": data.input_shape,
        "num_classes": data.num_classes,
        "class_labels": data.class_labels,
        "preprocessing": data.preprocessing(),
        "data": data_cfg.model_dump(mode="json"),
        "config": cfg.model_dump(mode="json"),
        "metrics": {k: v for k, v in metrics.items() if k not in VOLATILE_METRICS},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


# Metrics that differ between two runs of the same config: kept out of checkpoints, so that
# retraining with the same seed gives the same bytes (and later stages stay cached). They are
# in metrics.json and the manifest, where the energy estimate of the measurement code reads them.
VOLATILE_METRICS = ("train_wall_time_s", "train_cpu_time_s")
