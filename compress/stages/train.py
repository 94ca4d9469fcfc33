"""Stage `train`: fit a model (the teacher) from scratch on the pipeline's data.

Consumes the data split; produces `model.pt`, a self-describing checkpoint (model spec, state
dict, data spec, normalisation, config, metrics), and `history.json` with per-epoch figures.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compress import artifacts
from compress.models import ModelSpec, ResNetSpec
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import FIT_METRICS as METRICS
from compress.trainer.options import TrainOptions


class TrainConfig(StageConfig, TrainOptions):
    stage: Literal["train"] = "train"
    model: ModelSpec = Field(default_factory=ResNetSpec, description="architecture to train")


@register_stage(TrainConfig, produces="checkpoint", metrics=lambda cfg: METRICS)
def train(cfg: TrainConfig, ctx: StageContext) -> StageResult:
    from compress.models import build_model
    from compress.models.checkpoint import checkpoint_payload
    from compress.trainer.training import fit, fit_metrics, seed_everything

    data = ctx.dataset()
    # Seed before building: the initial weights must not depend on what ran earlier.
    seed_everything(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    result = fit(model, data, cfg, progress=ctx.progress, desc=ctx.stage_id)
    metrics = fit_metrics(model, data, result, who=ctx.stage_id)
    model.cpu()
    payload = checkpoint_payload(model, cfg.model, data, ctx.data_cfg, cfg, metrics)
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "history.json", result.history)
    return StageResult(primary="model.pt", metrics=metrics)
