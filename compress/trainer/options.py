"""The training fields stages share (`TrainOptions`, with `DistributedOptions` inside), as plain
pydantic classes: importing them costs no torch, so the command line can build its options from
them quickly, and the engines (training, distributed, devices) import this, not each other."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator

# The plain baseline's metrics (compress.trainer.baseline), beside every trained model's.
BASELINE_METRICS = ("baseline_test_accuracy_pct", "baseline_val_accuracy_pct",
                    "baseline_method", "vs_baseline_pts", "baseline_warning")

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16", "fp16"]


class DistributedOptions(BaseModel):
    """How many processes train together (DDP); see the README's section on GPUs and machines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nproc: int = Field(1, ge=1, le=1024, description="processes compress starts on this machine "
                       "(1 = one process); under torchrun, its --nproc-per-node decides instead")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto = NCCL for CUDA tensors where CUDA exists, gloo otherwise")
    timeout_s: float = Field(1800, gt=0, le=86_400, description="how long a rank waits for the "
                             "others (start-up, each collective, rank 0's export or bench)")


Optimizer = Literal["sgd", "adam", "adamw"]
MAX_EPOCHS = 10_000


def _epochs(value):
    """A number of epochs or "auto", with one clear message (a union's error lists both arms)."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EPOCHS:
        raise ValueError(f"not a number of epochs (1 to {MAX_EPOCHS}) nor auto "
                         "(train until validation stops improving, at most max_epochs)")
    return value


# The check lives in the type, so that a stage that narrows `epochs` (prune's fine-tuning
# allows 0) keeps its own.
Epochs = Annotated[int | Literal["auto"], PlainValidator(_epochs)]


Schedule = Literal["none", "step", "cosine", "onecycle", "plateau"]


class TrainOptions(BaseModel):
    """Training fields shared by stages that train. Defaults suit small models on a CPU."""

    epochs: Epochs = Field(
        30, description="epochs to train (the best validation epoch is kept), or auto: until "
        "`patience` epochs bring no improvement, at most `max_epochs`")
    max_epochs: int = Field(200, ge=1, le=MAX_EPOCHS, description="the cap of epochs: auto")
    batch_size: int = Field(64, ge=1, le=65_536, description="samples per optimizer step")
    optimizer: Optimizer = Field("adamw", description="sgd (with momentum), adam or adamw")
    lr: float = Field(1e-3, gt=0, le=10, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (Nesterov)")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="L2 weight decay")
    l1: float = Field(0.0, ge=0, le=1, description="L1 penalty on weights, added to the loss")
    schedule: Schedule = Field("cosine", description="learning-rate schedule (with epochs: "
                               "auto the default is plateau)")
    step_size: int = Field(10, ge=1, description="epochs between decays (schedule: step)")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor (step, plateau)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    patience: int | None = Field(
        10, ge=1, description="stop after this many epochs in which neither val accuracy nor, at "
        "equal accuracy, val loss improved; null = never"
    )
    augment_shift: int = Field(
        0, ge=0, le=8, description="random translation of inputs by up to this many samples/pixels"
    )
    device: Device = Field("auto", description="auto = CUDA if present (under DDP, the GPU of "
                           "the process's local rank)")
    precision: Precision = Field(
        "fp32", description="autocast dtype of the forward pass: bf16, or fp16 with a gradient "
        "scaler (CUDA only); weights and checkpoints stay fp32")
    num_workers: int | None = Field(
        None, ge=0, le=64, description="DataLoader worker processes (pinned memory, non-blocking "
        "copies); 0 = batches gathered in the training process; null = 0 on the CPU and for "
        "training splits up to 1 GiB on a GPU (kept there whole), else up to 4")
    distributed: DistributedOptions = Field(
        default_factory=DistributedOptions, description="several processes training one model "
        "with DDP; batch_size stays the global batch")
    seed: int = Field(0, ge=0, description="seed for weights, batches and augmentation")
    baseline: bool = Field(
        True, description="also fit the plain baseline (tables: logistic regression; images and "
        "sequences: a small CNN, seconds) and warn when the model is below it")

    @model_validator(mode="before")
    @classmethod
    def _auto_schedule(cls, values):
        # cosine and onecycle (the default is cosine) decay over a known number of epochs;
        # epochs: auto does not know it, so it lowers lr when validation stalls instead.
        if isinstance(values, dict) and values.get("epochs") == "auto":
            values = {"schedule": "plateau", **values}
        return values

    @model_validator(mode="after")
    def _check(self):
        if self.epochs == "auto":
            if self.patience is None:
                raise ValueError("epochs: auto stops after `patience` epochs without "
                                 "improvement; give patience a number (e.g. 10), not null")
            if self.schedule in ("cosine", "onecycle"):
                raise ValueError(f"schedule {self.schedule} decays over a known number of "
                                 "epochs, which epochs: auto does not know; use schedule: "
                                 "plateau (lowers lr when validation stalls), step or none")
        if self.schedule == "onecycle" and self.patience is not None and self.patience < 3:
            raise ValueError("onecycle with patience < 3 stops before the warm-up ends")
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision fp16 needs CUDA; on the CPU use precision bf16 or fp32")
        return self


def train_options_of(cfg) -> TrainOptions | None:
    """The training options of a stage config (itself, or a field holding them); None for a
    stage that does not train. Stages that train run on every rank under DDP."""
    if isinstance(cfg, TrainOptions):
        return cfg
    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        if isinstance(value, TrainOptions):
            return value
    return None


class DistillOptions(BaseModel):
    """Loss fields of every stage that learns from a teacher."""

    temperature: float = Field(4.0, gt=0, le=100, description="softmax temperature T")
    alpha: float = Field(
        0.9, ge=0, le=1, description="weight of the soft (teacher) term; 1 - alpha goes to CE"
    )


class HintConfig(BaseModel):
    """Feature distillation on one pair of layers (module paths as in `model.named_modules()`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    student_layer: str = Field(description="student module whose output is matched, e.g. blocks.1")
    teacher_layer: str = Field(description="teacher module it is matched to, e.g. blocks.2")
    weight: float = Field(1.0, gt=0, le=1000, description="weight of the hint MSE in the loss")


FIT_METRICS = ("test_accuracy_pct", "val_accuracy_pct", "best_epoch", "epochs_run", "stopped_early",
           "best_epoch_is_last", "last_epoch_warning", "params", "train_wall_time_s",
           "train_cpu_time_s", "device", "precision", "world_size", "train_samples",
           "test_samples", *BASELINE_METRICS)
