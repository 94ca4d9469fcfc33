"""What every stage shares: its config base class, the context the runner hands it, its result,
and the registry that maps a `stage:` name to (config class, function, artifact kind)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

# Ids become folder names and metric prefixes (`teacher.test_accuracy_pct`): no dots, no slashes.
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"


class StageConfig(BaseModel):
    """Base of every stage's config: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="name of this step; also its output folder")
    stage: str

    # field name -> artifact kinds that field may reference (e.g. {"input": {"checkpoint"}});
    # a dotted name reaches into a nested field ("peers.onnx"), which may be None
    references: ClassVar[dict[str, set[str]]] = {}
    # pipeline-level sections the stage's output depends on (part of its cache key)
    pipeline_settings: ClassVar[tuple[str, ...]] = ()
    # the data the stage reads: "arrays" (digits, mnist1d, npz: inputs and labels) or "text"
    data_kind: ClassVar[str] = "arrays"

    def referenced_ids(self) -> dict[str, list[str]]:
        """Stage ids this step consumes, per field."""
        out = {}
        for name in self.references:
            value: Any = self
            for part in name.split("."):
                value = getattr(value, part, None)
            out[name] = [value] if isinstance(value, str) else list(value or [])
        return out

    def check_files(self, data) -> None:
        """Refuse, before a run writes anything, files this step names (an ONNX model) that
        cannot work with `data`: raise a CompressError starting "field '<name>': ..."."""

    def hash_payload(self) -> dict[str, Any]:
        """What the cache key covers: every field but the id (renaming reruns nothing)."""
        return self.model_dump(mode="json", exclude={"id"})


# What a stage hands on, by format: a self-describing checkpoint (compress.models.checkpoint),
# an ONNX model with its contract in metadata_props (compress.onnx.contract), the same in ORT's
# flatbuffer format (compress.onnx.ortformat), a bench result (bench.json), or an attribution
# fidelity result (explain.json).
ArtifactKind = Literal["checkpoint", "onnx", "ort", "bench", "explain"]
ARTIFACT_KINDS: tuple[str, ...] = get_args(ArtifactKind)


@dataclass(frozen=True)
class Artifact:
    """The main output of a finished stage, as a later stage sees it."""

    stage_id: str
    kind: ArtifactKind
    path: Path
    sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageContext:
    """Everything a stage may touch: its inputs (read only) and its own output folder."""

    stage_id: str
    out_dir: Path
    data_cfg: Any
    inputs: dict[str, Artifact] = field(default_factory=dict)
    pipeline: str = ""
    progress: bool = True
    energy: Any = None  # the pipeline's EnergyConfig (power model, grid intensity); None = defaults
    cache_key: str = ""  # the runner's content hash for this stage; "" outside a pipeline
    data: Any = None  # a Dataset given in memory (the Python API); None = load data_cfg

    def dataset(self):
        from compress.data import load_dataset

        return self.data if self.data is not None else load_dataset(self.data_cfg)


def source_of(ctx: StageContext, src: Artifact, **extra) -> dict:
    """`compress.source` of a file a stage writes: the pipeline, stage and cache key (the
    runner's content hash of the stage's config, inputs, data and code) that made it, and what
    it was made from."""
    return {"pipeline": ctx.pipeline, "stage": ctx.stage_id, "cache_key": ctx.cache_key,
            "from_stage": src.stage_id, **extra}


@dataclass
class StageResult:
    primary: str  # file name, under out_dir, of the artifact later stages consume
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageDef:
    name: str
    config_cls: type[StageConfig]
    fn: Callable[[Any, StageContext], StageResult]
    produces: ArtifactKind
    # cfg -> the metric names the stage will report, when they are known before it runs
    metrics: Callable[[Any], Iterable[str]] | None = None


STAGES: dict[str, StageDef] = {}


def register_stage(config_cls: type[StageConfig], produces: ArtifactKind,
                   metrics: Callable[[Any], Iterable[str]] | None = None):
    """Register `fn` as the implementation of `config_cls` (whose `stage` literal names it).

    `metrics(cfg)`, if given, names every metric the stage reports, so that a gate on a metric
    that does not exist is refused when the pipeline loads rather than after it ran.
    """

    if produces not in ARTIFACT_KINDS:
        raise ValueError(f"{config_cls.__name__}: produces={produces!r}, not one of "
                         f"{ARTIFACT_KINDS}")

    def deco(fn):
        name = config_cls.model_fields["stage"].default
        STAGES[name] = StageDef(name, config_cls, fn, produces, metrics)
        return fn

    return deco


def metric_names(cfg: StageConfig) -> set[str] | None:
    """The metrics a configured stage will report; None when only a run can tell."""
    names = STAGES[cfg.stage].metrics
    return None if names is None else set(names(cfg))
