"""Stages, one module each. Importing this package registers them all in `STAGES`."""

from compress.stages import bench, convert, distill, export, prune, qat, quantize, train  # noqa: F401  (registration side effect)
from compress.stages.base import (
    STAGES,
    Artifact,
    StageConfig,
    StageContext,
    StageDef,
    StageResult,
    register_stage,
)

__all__ = [
    "STAGES", "Artifact", "StageConfig", "StageContext", "StageDef", "StageResult",
    "register_stage",
]
