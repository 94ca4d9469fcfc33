"""What the text stages read from the pipeline: its sentences, and the teacher embeddings a
`pretrained` stage wrote beside its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compress.errors import ConfigError

EMBEDDINGS = "embeddings.npz"

if TYPE_CHECKING:  # the runner's context; only its fields are read
    from compress.stages.base import StageContext


def text_corpus(ctx: StageContext):
    """The pipeline's sentences, or a ConfigError if its data is not text."""
    from compress.data import TextCorpus

    data = ctx.dataset()
    if not isinstance(data, TextCorpus):
        raise ConfigError(f"stage '{ctx.stage_id}' needs text data (data: {{source: pydoc}}), "
                          f"not '{data.name}'")
    return data


def teacher_embeddings(artifact_path: Path) -> dict[str, np.ndarray]:
    """The train/val/test embeddings a `pretrained` stage wrote beside its checkpoint."""
    path = artifact_path.parent / EMBEDDINGS
    if not path.is_file():
        raise ConfigError(f"{path}: not found; the teacher must be a `pretrained` stage")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
