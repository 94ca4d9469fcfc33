"""`compress.search`: the `search` stage from Python (kept beside api.py, which it uses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.api import ArtifactResult, _run_stage
from compress.api.inputs import DataLike, _config, _dataset
from compress.errors import ConfigError


def search(teacher: str | Path, data: DataLike, *, space: dict, out: str | Path,
           **options: Any) -> ArtifactResult:
    """Search the student: the fastest model in ONNX Runtime that keeps the teacher's accuracy
    (see the `search` stage and docs/search.md).

    Args:
        teacher: path of the teacher's checkpoint (`model.pt`) or ONNX model.
        data: as in `train`.
        space: what trials vary, e.g. `{"model": {"arch": "resnet", "width": {"choices": [16,
            32]}}, "prune_ratio": {"choices": [0, 0.25]}}`.
        out: folder for the pick (`model.pt`), front.json/.csv/.png, trials.csv, search.md.
        **options: any field of the `search` stage (`trials`, `time_s`,
            `max_val_accuracy_drop_pts`, `storage`, `workers`, `latency_batch_size`, ...).

    Returns:
        ArtifactResult: the pick's checkpoint and its metrics (`val_accuracy_pct`, `p50_ms`,
        `trials_finished`, ...).

    Raises:
        compress.errors.ConfigError: a bad option or space (one line).
        compress.errors.GateError: no trial met the constraint (the trials are kept).
    """
    from compress import artifacts
    from compress.onnx.external import model_sha256
    from compress.stages import Artifact
    from compress.stages.search import SearchConfig

    cfg = _config(SearchConfig, "search", {"id": "search", "teacher": "teacher",
                                           "space": space, **options})
    path = Path(teacher)
    if not path.is_file():
        raise ConfigError(f"compress.search: {path}: teacher not found")
    kind = "onnx" if path.suffix == ".onnx" else "checkpoint"
    sha = model_sha256(path) if kind == "onnx" else artifacts.sha256_file(path)
    folder = Path(out)
    result = _run_stage(cfg, _dataset(data), {"teacher": Artifact("teacher", kind, path, sha)},
                        folder)
    return ArtifactResult(folder / result.primary, result.metrics)
