"""Stages, one module each (`MODULES` maps a stage's name to its module). A module registers its
stage when imported: `STAGES` imports them all, `stage_def(name)` only the one it names, so
that `compress <stage> --help` reads one config class."""

from __future__ import annotations

import importlib

from compress.stages.base import (
    STAGES as _REGISTRY,
)
from compress.stages.base import (
    Artifact,
    StageConfig,
    StageContext,
    StageDef,
    StageResult,
    register_stage,
)

# Array stages, text stages (in stages/text/, over compress.text; the transformers extra),
# attribution fidelity, and `import` (foreign ONNX models), whose module name cannot be a keyword.
MODULES = {
    "train": "train", "distill": "distill", "prune": "prune", "qat": "qat", "export": "export",
    "quantize": "quantize", "convert": "convert", "bench": "bench",
    "pretrained": "text.pretrained", "embed_distill": "text.distill", "embed_export": "text.export",
    "embed_quantize": "text.quantize", "embed_bench": "text.bench",
    "explain": "explain", "import": "import_onnx", "search": "search",
}


def stage_def(name: str) -> StageDef:
    """The registered stage `name` (KeyError when there is none), importing only its module."""
    if name not in _REGISTRY and name in MODULES:
        importlib.import_module(f"compress.stages.{MODULES[name]}")
    return _REGISTRY[name]


def all_stages() -> dict[str, StageDef]:
    """Every stage, registered in the order of `MODULES`."""
    for name in MODULES:
        stage_def(name)
    return _REGISTRY


def __getattr__(name: str):
    if name == "STAGES":  # `from compress.stages import STAGES`: the full registry
        return all_stages()
    raise AttributeError(f"module 'compress.stages' has no attribute {name!r}")


__all__ = [
    "MODULES", "STAGES", "Artifact", "StageConfig", "StageContext", "StageDef", "StageResult",
    "all_stages", "register_stage", "stage_def",
]
