"""Stages, one module each. Importing this package registers them all in `STAGES`."""

import compress.stages.embed_bench  # noqa: F401  (text pipelines: compress.text)
import compress.stages.embed_distill  # noqa: F401
import compress.stages.embed_export  # noqa: F401
import compress.stages.embed_quantize  # noqa: F401
import compress.stages.import_onnx  # noqa: F401  (stage `import`: foreign ONNX models)
import compress.stages.pretrained  # noqa: F401
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
