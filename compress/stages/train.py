"""Stage `train`: fit a model (the teacher) from scratch on the pipeline's data.

Consumes the data split; produces `model.pt`, a self-describing checkpoint (model spec, state
dict, data spec, normalisation, config, metrics), and `history.json` with per-epoch figures.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compress import artifacts
from compress.models import ModelSpec, ResNetSpec, build_model, count_params
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.training import TrainOptions, accuracy_pct, fit, predict_logits, seed_everything

METRICS = ("test_accuracy_pct", "val_accuracy_pct", "best_epoch", "epochs_run", "stopped_early",
           "params", "train_wall_time_s", "train_cpu_time_s", "device", "precision",
           "world_size", "train_samples", "test_samples")


class TrainConfig(StageConfig, TrainOptions):
    stage: Literal["train"] = "train"
    model: ModelSpec = Field(default_factory=ResNetSpec, description="architecture to train")


# Metrics that differ between two runs of the same config: kept out of checkpoints, so that
# retraining with the same seed gives the same bytes (and later stages stay cached). They are
# in metrics.json and the manifest, where the energy estimate of the measurement code reads them.
VOLATILE_METRICS = ("train_wall_time_s", "train_cpu_time_s")


def checkpoint_payload(model, spec, data, data_cfg, cfg, metrics) -> dict:
    """The dict every stage that writes a checkpoint saves: enough to rebuild without code."""
    return {
        "model": spec.model_dump(mode="json"),
        "input_shape": data.input_shape,
        "num_classes": data.num_classes,
        "class_labels": data.class_labels,
        "preprocessing": data.preprocessing(),
        "data": data_cfg.model_dump(mode="json"),
        "config": cfg.model_dump(mode="json"),
        "metrics": {k: v for k, v in metrics.items() if k not in VOLATILE_METRICS},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def fit_metrics(model, data, result) -> dict:
    """The metrics every training stage reports for the model it trained."""
    device = next(model.parameters()).device
    return {
        "test_accuracy_pct": accuracy_pct(predict_logits(model, data.x_test, device), data.y_test),
        "val_accuracy_pct": result.best_val_accuracy_pct,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "params": count_params(model),
        "train_wall_time_s": round(result.wall_time_s, 3),
        "train_cpu_time_s": round(result.cpu_time_s, 3),
        "device": result.device,
        "precision": result.precision,
        "world_size": result.world_size,
        "train_samples": len(data.x_train),
        "test_samples": len(data.x_test),
    }


@register_stage(TrainConfig, produces="checkpoint", metrics=lambda cfg: METRICS)
def train(cfg: TrainConfig, ctx: StageContext) -> StageResult:
    data = ctx.dataset()
    # Seed before building: the initial weights must not depend on what ran earlier.
    seed_everything(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    result = fit(model, data, cfg, progress=ctx.progress, desc=ctx.stage_id)
    metrics = fit_metrics(model, data, result)
    model.cpu()
    payload = checkpoint_payload(model, cfg.model, data, ctx.data_cfg, cfg, metrics)
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", payload)
    artifacts.write_json(ctx.out_dir / "history.json", result.history)
    return StageResult(primary="model.pt", metrics=metrics)
