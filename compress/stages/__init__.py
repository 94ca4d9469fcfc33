"""Stages, one module each. Importing this package registers them all in `STAGES`."""
# ruff: noqa: I001  (array stages first, then the text stages, which need the transformers extra)

from compress.stages import (  # noqa: F401  (registration side effect)
    bench,
    convert,
    distill,
    export,
    prune,
    qat,
    quantize,
    train,
)
from compress.stages import (  # noqa: F401  (text pipelines: compress.text)
    embed_bench,
    embed_distill,
    embed_export,
    embed_quantize,
    pretrained,
)
from compress.stages import explain  # noqa: F401  (attribution fidelity)
from compress.stages import import_onnx  # noqa: F401  (stage `import`: foreign ONNX models)
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
