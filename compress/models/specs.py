"""The model families' specs: typed, validated descriptions of an architecture, discriminated
by `arch`. Plain pydantic (no torch), so configs and the command line load fast; the families
(`compress.models.mlp`, ...) build the modules from them."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from compress.models.fields import WeightsField


class MlpSpec(WeightsField):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(
        default_factory=lambda: [256, 128], min_length=1, description="units per hidden layer"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden Linear")


class ResBlockSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mid: PositiveInt = Field(description="channels after the block's first conv")
    out: PositiveInt = Field(description="channels the block outputs")
    stride: Literal[1, 2] = 1
    projection: bool | None = Field(
        None, description="1x1 conv shortcut; null = only where stride or channels change "
        "(set by pruning, which can make a projected block's channels equal)"
    )


class ResNetSpec(WeightsField):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["resnet"] = "resnet"
    width: PositiveInt = Field(32, description="channels of the first stage; doubled per stage")
    stages: int = Field(3, ge=1, le=6, description="stages; each after the first halves resolution")
    blocks_per_stage: int = Field(1, ge=1, le=8, description="residual blocks per stage")
    kernel_size: int = Field(3, ge=1, le=15, description="conv kernel size (odd)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")
    stem: PositiveInt | None = Field(None, description="explicit stem channels (set by pruning)")
    blocks: list[ResBlockSpec] | None = Field(
        None, description="explicit per-block channels; overrides width/stages (set by pruning)"
    )

    def layout(self) -> tuple[int, list[ResBlockSpec]]:
        """The real channel counts: (stem channels, blocks)."""
        if self.blocks is not None:
            return self.stem or self.blocks[0].out, list(self.blocks)
        blocks = []
        for s in range(self.stages):
            c = self.width * 2**s
            for b in range(self.blocks_per_stage):
                blocks.append(ResBlockSpec(mid=c, out=c, stride=2 if s > 0 and b == 0 else 1))
        return self.stem or self.width, blocks


class RnnSpec(WeightsField):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["rnn"] = "rnn"
    cell: Literal["gru", "lstm"] = Field("gru", description="recurrent cell")
    layers: int = Field(1, ge=1, le=8, description="stacked recurrent layers")
    hidden: int = Field(128, ge=1, le=8192, description="hidden units per direction")
    bidirectional: bool = Field(False, description="also read the sequence backwards")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout between layers and before the "
                           "classifier")
    readout: Literal["last", "mean"] = Field(
        "last", description="last: final hidden state(s); mean: average output over the steps"
    )


class EncoderLayerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    heads: PositiveInt = Field(description="attention heads of this layer")
    ff: PositiveInt = Field(description="feed-forward hidden units of this layer")


class TransformerSpec(WeightsField):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["transformer"] = "transformer"
    layers: int = Field(2, ge=1, le=24, description="encoder layers")
    width: PositiveInt = Field(64, description="token width (model dimension)")
    heads: PositiveInt = Field(4, description="attention heads; must divide width")
    ff: PositiveInt = Field(128, description="feed-forward hidden units")
    patch: PositiveInt = Field(1, description="sequence steps per token (embedding stride)")
    kernel: PositiveInt | None = Field(
        None, description="embedding conv kernel; null = patch (non-overlapping, ViT-style)"
    )
    positions: Literal["learned", "sinusoidal"] = Field("learned", description="position code")
    pooling: Literal["cls", "mean"] = Field("mean", description="cls token or mean over tokens")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout in attention output and ff")
    blocks: list[EncoderLayerSpec] | None = Field(
        None, description="explicit per-layer heads/ff; overrides layers/heads/ff (set by pruning)"
    )

    @field_validator("heads")
    @classmethod
    def _heads_divide_width(cls, heads: int, info: ValidationInfo):
        width = info.data.get("width")
        if width and width % heads:
            raise ValueError(f"heads ({heads}) must divide width ({width}); e.g. heads "
                             f"{math.gcd(width, heads)}, or a width that is a multiple of {heads}")
        return heads

    @field_validator("kernel")
    @classmethod
    def _kernel_covers_patch(cls, kernel: int | None, info: ValidationInfo):
        patch = info.data.get("patch")
        if kernel is not None and patch and kernel < patch:
            raise ValueError(f"kernel ({kernel}) must be >= patch ({patch}), or the embedding "
                             "skips steps; null = patch")
        return kernel

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def layout(self) -> list[EncoderLayerSpec]:
        if self.blocks is not None:
            return list(self.blocks)
        return [EncoderLayerSpec(heads=self.heads, ff=self.ff) for _ in range(self.layers)]


class MobileNetV2Spec(WeightsField):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["mobilenet_v2"] = "mobilenet_v2"
    width_mult: float = Field(1.0, gt=0, le=4, description="channel multiplier (torchvision's); "
                              "must match the weights' (1.0 for the ImageNet checkpoint)")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout before the classifier")


from compress.models.python import PythonSpec  # noqa: E402  (no torch: it finds, not imports)

AnySpec = MlpSpec | ResNetSpec | RnnSpec | TransformerSpec | MobileNetV2Spec | PythonSpec
ModelSpec = Annotated[AnySpec, Field(discriminator="arch")]
_SPEC = TypeAdapter(ModelSpec)


def parse_model_spec(data: dict) -> AnySpec:
    return _SPEC.validate_python(data)
