"""Model registry: a typed spec per family, discriminated by `arch` (compress.models.specs, no
torch), and `build_model(spec, ...)`, which imports the family it builds.

A checkpoint stores the spec (with real channel counts) next to its state dict, so any
checkpoint rebuilds from data alone, without pickled code.
"""

from __future__ import annotations

from compress.models.python import PythonSpec
from compress.models.specs import (
    AnySpec,
    MlpSpec,
    MobileNetV2Spec,
    ModelSpec,
    ResNetSpec,
    RnnSpec,
    TransformerSpec,
    parse_model_spec,
)


def build_model(spec, input_shape: list[int], num_classes: int):
    """Build an untrained model for inputs shaped `input_shape` (no batch axis)."""
    from compress.models.mlp import MLP
    from compress.models.mobilenet_v2 import MobileNetV2
    from compress.models.resnet import ResNet
    from compress.models.rnn import RNN
    from compress.models.transformer import Transformer

    if isinstance(spec, dict):
        spec = parse_model_spec(spec)
    if isinstance(spec, PythonSpec):  # the user's own code (needs consent, see models.python)
        from compress.models import python

        return python.build(spec, input_shape, num_classes)
    families = {MlpSpec: MLP, ResNetSpec: ResNet, RnnSpec: RNN, TransformerSpec: Transformer,
                MobileNetV2Spec: MobileNetV2}
    return families[type(spec)](spec, input_shape, num_classes)


def count_params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


__all__ = ["AnySpec", "ModelSpec", "MlpSpec", "MobileNetV2Spec", "PythonSpec", "ResNetSpec",
           "RnnSpec", "TransformerSpec",
           "build_model", "count_params", "parse_model_spec"]
