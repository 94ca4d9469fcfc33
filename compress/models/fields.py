"""Fields every model family's spec shares (plain pydantic, no torch)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class WeightsField(BaseModel):
    """`weights:`, which every family takes: start from a trained state dict instead of random
    weights (compress.models.weights loads it, in the stages that train)."""

    weights: str | None = Field(
        None, description="initial weights: a torchvision-style state dict (.pth) or a compress "
        "checkpoint (model.pt), loaded with weights_only; strict, except a classifier whose "
        "class count differs (re-initialised); relative to the pipeline file")


def weights_sha256(spec) -> str | None:
    """For cache keys: the weights file's bytes (a new file under the same name reruns)."""
    from compress.artifacts import sha256_file

    path = getattr(spec, "weights", None)
    return sha256_file(path) if path is not None and Path(path).is_file() else None
