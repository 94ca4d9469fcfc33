"""What the Python API returns (compress.api): typed results, importable without torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


@dataclass
class ModelResult:
    """A trained, distilled or pruned model and what its stage reports."""

    model: nn.Module
    metrics: dict[str, Any]
    history: Any = None


@dataclass
class ArtifactResult:
    """A file an API call wrote (ONNX model) and its metrics."""

    path: Path
    metrics: dict[str, Any]


@dataclass
class BenchResult:
    """A side-by-side benchmark: flat metrics (`<model>.b1_t1.p50_ms`, ...) and its table."""

    metrics: dict[str, Any]
    table: str
    path: Path

    def summary(self) -> str:
        """The markdown table (accuracy, size, latency, memory, energy per model)."""
        return self.table


@dataclass
class RunResult:
    """A pipeline run: its folder, manifest, and which stages ran or came from the cache."""

    root: Path
    manifest: dict[str, Any]
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)

    def metrics(self, stage_id: str) -> dict[str, Any]:
        """The metrics stage `stage_id` reported."""
        return self.manifest["stages"][stage_id]["metrics"]
