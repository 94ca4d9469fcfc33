"""Stage `train`: fit a model (the teacher) from scratch on the pipeline's data.

Consumes the data split; produces `model.pt`, a self-describing checkpoint (model spec, state
dict, data spec, normalisation, config, metrics), and `history.json` with per-epoch figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from compress import artifacts
from compress.models import ModelSpec, ResNetSpec, build_model
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import FIT_METRICS as METRICS
from compress.trainer.options import TrainOptions

if TYPE_CHECKING:  # torch is imported when a stage runs, not when the command line starts
    from torch import nn


class TrainConfig(StageConfig, TrainOptions):
    stage: Literal["train"] = "train"
    model: ModelSpec = Field(default_factory=ResNetSpec, description="architecture to train")


def train_model(model: nn.Module, data, cfg: TrainOptions, progress: bool = True,
                desc: str = "train") -> tuple[dict, list[dict]]:
    """Train `model` in place (best validation epoch kept, left on the CPU); (metrics, per-epoch
    history). The stage and `compress.train` both run this."""
    from compress.trainer.training import fit, fit_metrics

    result = fit(model, data, cfg, progress=progress, desc=desc)
    metrics = fit_metrics(model, data, result, who=desc, o=cfg, progress=progress)
    model.cpu()
    return metrics, result.history


@register_stage(TrainConfig, produces="checkpoint", metrics=lambda cfg: METRICS)
def train(cfg: TrainConfig, ctx: StageContext) -> StageResult:
    from compress.models.checkpoint import checkpoint_payload
    from compress.trainer.training import seed_everything

    data = ctx.dataset()
    # Seed before building: the initial weights must not depend on what ran earlier.
    seed_everything(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    metrics, history = train_model(model, data, cfg, ctx.progress, ctx.stage_id)
    payload = checkpoint_payload(model, cfg.model, data, ctx.data_cfg, cfg, metrics)
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "history.json", history)
    return StageResult(primary="model.pt", metrics=metrics)
