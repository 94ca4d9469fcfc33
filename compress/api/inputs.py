"""What the Python API accepts, turned into what the stages take: keyword options validated
by the stage's config class, a data set from a Dataset or a spec, a student module from a module
or a spec, a teacher from a module, an ONNX path or a compress checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from compress.data import Dataset

DataLike = Any  # a compress.data.Dataset, a source name ("digits") or a data mapping


def _config(cls, fn: str, values: dict):
    """`cls` validated from keyword arguments; errors as the YAML's, naming the argument."""
    from pydantic import ValidationError

    from compress.validation import class_at, error_message, walk_error_path

    try:
        return cls.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        path, _ = walk_error_path(values, err["loc"])
        msg = error_message(err, path, class_at(cls, values, path) if path else None)
        name = ".".join(map(str, path)) or "arguments"
        raise ConfigError(f"compress.{fn}: argument '{name}': {msg}") from e


def _dataset(data: DataLike) -> Dataset:
    from pydantic import TypeAdapter, ValidationError

    from compress.data import DataConfig, Dataset, load_dataset

    if isinstance(data, Dataset):
        return data
    spec = {"source": data} if isinstance(data, str) else data
    try:
        cfg = TypeAdapter(DataConfig).validate_python(spec)
    except ValidationError as e:
        raise ConfigError(f"data: not a Dataset (compress.data.from_arrays) nor a data spec "
                          f"such as 'digits' ({e.errors()[0]['msg']})") from e
    return load_dataset(cfg)


def _module(model, data, fn: str, trust_code: bool) -> nn.Module:
    """A module as given, or built from a spec mapping (`{arch: resnet, ...}`, or `{arch:
    python, factory: ...}` with trust_code, the module looked up from the working folder)."""
    from torch import nn

    from compress.models import python

    if isinstance(model, nn.Module):
        python.check_output(model, data.input_shape, data.num_classes, f"compress.{fn}")
        return model
    if isinstance(model, dict) and model.get("arch") == "python":
        if not trust_code:
            raise ConfigError(f"compress.{fn}: argument 'model': arch 'python' imports and runs "
                              f"{model.get('factory')}; pass trust_code=True if you trust it")
        try:
            model = python.resolve(model, Path.cwd())
        except ValueError as e:
            raise ConfigError(f"compress.{fn}: argument 'model.factory': {e}") from e
    from compress.models import parse_model_spec

    try:
        spec = parse_model_spec(model)
    except Exception as e:
        raise ConfigError(f"compress.{fn}: argument 'model': an nn.Module or a model spec "
                          f"mapping ({str(e).splitlines()[0]})") from e
    from compress.models.weights import initial_model

    with python.trust_code(trust_code):  # `weights:` in the spec loads too
        built = initial_model(spec, data.input_shape, data.num_classes, f"compress.{fn}")[0]
        python.check_output(built, data.input_shape, data.num_classes, f"compress.{fn}")
    return built


def _teacher(teacher, fn: str):
    """A teacher as given (a module, an ONNX path), or rebuilt from a compress checkpoint (its
    dict, or a .pt/.pth path: it names its model spec). A bare state dict holds weights but
    not the module they belong to: one line saying how to load it."""
    from collections.abc import Mapping

    from torch import nn

    from compress import artifacts
    from compress.models.checkpoint import model_from_checkpoint

    where = f"compress.{fn}: argument 'teacher'"
    if isinstance(teacher, (str, Path)) and Path(teacher).suffix in (".pt", ".pth"):
        teacher = artifacts.load_checkpoint(teacher)
    if isinstance(teacher, Mapping) and {"model", "state_dict"} <= set(teacher):
        return model_from_checkpoint(dict(teacher), where)
    if isinstance(teacher, Mapping):
        keys = list(teacher)
        raise ConfigError(
            f"{where}: a state dict ({len(keys)} entries, e.g. {str(keys[:1])[1:-1] or 'none'})"
            f", not a module; load it into the module first: model = MyNet(); "
            f"model.load_state_dict(torch.load(...)); compress.{fn}(model, ...)")
    if not isinstance(teacher, (nn.Module, str, Path)):
        raise ConfigError(f"{where}: an nn.Module or the path of an ONNX model, not "
                          f"{type(teacher).__name__}")
    return teacher
