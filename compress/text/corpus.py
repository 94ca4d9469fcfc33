"""The teacher embeddings a `pretrained` stage wrote beside its checkpoint (the text stages
read the pipeline's sentences through compress.stages.text.text_corpus)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.errors import ConfigError

EMBEDDINGS = "embeddings.npz"

def teacher_embeddings(artifact_path: Path) -> dict[str, np.ndarray]:
    """The train/val/test embeddings a `pretrained` stage wrote beside its checkpoint."""
    path = artifact_path.parent / EMBEDDINGS
    if not path.is_file():
        raise ConfigError(f"{path}: not found; the teacher must be a `pretrained` stage")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
