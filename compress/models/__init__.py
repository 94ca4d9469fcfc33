"""Model registry: a typed spec per family, discriminated by `arch`, and `build_model(spec, ...)`.

A checkpoint stores the spec (with real channel counts) next to its state dict, so any
checkpoint rebuilds from data alone, without pickled code.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from compress.models.mlp import MLP, MlpSpec
from compress.models.python import PythonSpec
from compress.models.resnet import ResNet, ResNetSpec
from compress.models.rnn import RNN, RnnSpec
from compress.models.transformer import Transformer, TransformerSpec

AnySpec = MlpSpec | ResNetSpec | RnnSpec | TransformerSpec | PythonSpec
ModelSpec = Annotated[AnySpec, Field(discriminator="arch")]
_SPEC = TypeAdapter(ModelSpec)


def parse_model_spec(data: dict) -> AnySpec:
    return _SPEC.validate_python(data)


def build_model(spec, input_shape: list[int], num_classes: int):
    """Build an untrained model for inputs shaped `input_shape` (no batch axis)."""
    if isinstance(spec, dict):
        spec = parse_model_spec(spec)
    if isinstance(spec, PythonSpec):  # the user's own code (needs consent, see models.python)
        from compress.models import python

        return python.build(spec, input_shape, num_classes)
    families = {MlpSpec: MLP, ResNetSpec: ResNet, RnnSpec: RNN, TransformerSpec: Transformer}
    return families[type(spec)](spec, input_shape, num_classes)


def count_params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


__all__ = ["ModelSpec", "MlpSpec", "PythonSpec", "ResNetSpec", "RnnSpec", "TransformerSpec",
           "build_model", "count_params", "parse_model_spec"]
