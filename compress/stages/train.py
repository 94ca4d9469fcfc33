"""Stage `train`: fit a model (the teacher) on the pipeline's data, from scratch or from
pretrained weights (`model.weights`, fine-tuned: `freeze_epochs`, `backbone_lr_scale`).

Consumes the data split; produces `model.pt`, a self-describing checkpoint (model spec, state
dict, data spec, normalisation, config, metrics), and `history.json` with per-epoch figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from compress import artifacts
from compress.models import ModelSpec, ResNetSpec
from compress.models.fields import weights_sha256
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import FIT_METRICS as METRICS
from compress.trainer.options import TrainOptions

if TYPE_CHECKING:  # torch is imported when a stage runs, not when the command line starts
    from torch import nn


class TrainConfig(StageConfig, TrainOptions):
    stage: Literal["train"] = "train"
    model: ModelSpec = Field(default_factory=ResNetSpec, description="architecture to train")
    freeze_epochs: int = Field(
        0, ge=0, le=10_000, description="first epochs that train only the classifier (the last "
        "Linear layer), the backbone frozen with its BatchNorm statistics: for pretrained weights")
    backbone_lr_scale: float = Field(
        1.0, gt=0, le=1, description="learning rate of every layer but the classifier, as a "
        "fraction of lr (e.g. 0.1 when fine-tuning pretrained weights)")

    def check_files(self, data) -> None:
        from compress.models.weights import check_weights

        check_weights(self.model, data, "model.weights")

    def hash_payload(self) -> dict:
        payload = super().hash_payload()
        if self.model.weights is not None:
            payload["weights_sha256"] = weights_sha256(self.model)
        return payload


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
    from compress.models.weights import initial_model
    from compress.trainer.training import seed_everything

    data = ctx.dataset()
    # Seed before building: the initial weights must not depend on what ran earlier.
    seed_everything(cfg.seed)
    model, weights = initial_model(cfg.model, data.input_shape, data.num_classes, ctx.stage_id)
    metrics, history = train_model(model, data, cfg, ctx.progress, ctx.stage_id)
    payload = checkpoint_payload(model, cfg.model, data, ctx.data_cfg, cfg, metrics)
    if weights is not None:
        payload["weights"] = weights  # the file it started from: path, sha256, re-initialised
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "history.json", history)
    return StageResult(primary="model.pt", metrics=metrics)
