"""Models from the user's own code: `model: {arch: python, factory: "my_models:build", kwargs}`.

The factory's module is looked up beside the pipeline file first, then among installed
packages; finding it runs nothing. Importing it runs its code, so that needs consent
(`compress run --trust-code`, `trust_code=True` in the Python API): without it `build` refuses.
A checkpoint records factory, kwargs, the module's file and sha256 (never a pickled module), and,
after structured pruning, the layer attributes and tensor shapes that changed, so the pruned
model rebuilds from the factory alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from compress.errors import ConfigError
from compress.models.fields import WeightsField

TRUST_ENV = "COMPRESS_TRUST_CODE"  # inherited by the fresh processes that measure memory
_FACTORY = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class PythonSpec(WeightsField):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Literal["python"] = "python"
    factory: str = Field(description="'module:function' (or a class) that returns an "
                         "nn.Module; the module beside the pipeline file or installed")
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="keyword arguments the factory is called with")
    source_file: str | None = Field(None, description="the module's file (filled in on load)")
    source_sha256: str | None = Field(None, description="its sha256 (filled in on load; part of "
                                      "the cache key, so editing the module reruns the stage)")
    pruned_attributes: dict[str, dict[str, Any]] | None = Field(
        None, description="set by pruning: layer attributes that changed (e.g. out_channels)")
    pruned_shapes: dict[str, list[int]] | None = Field(
        None, description="set by pruning: shapes of the weights and buffers that changed")

    @field_validator("factory")
    @classmethod
    def _module_name(cls, v: str) -> str:
        if not re.fullmatch(_FACTORY, v):
            raise ValueError(
                f"'{v}' is not 'module:function' with a plain module name (a path such as "
                "'../x' or '/abs/x' is outside the allowed places): put the module beside the "
                "pipeline file or install it")
        return v


# --- consent --------------------------------------------------------------------------------

_trusted = False


def code_trusted() -> bool:
    return _trusted or os.environ.get(TRUST_ENV) == "1"


@contextlib.contextmanager
def trust_code(enabled: bool = True) -> Iterator[None]:
    """Within this block (and in processes it starts), factories named by files may be imported."""
    global _trusted
    before, env = _trusted, os.environ.get(TRUST_ENV)
    if enabled:
        _trusted = True
        os.environ[TRUST_ENV] = "1"
    try:
        yield
    finally:
        _trusted = before
        if env is None:
            os.environ.pop(TRUST_ENV, None)
        else:
            os.environ[TRUST_ENV] = env


# --- finding the module (runs nothing) -------------------------------------------------------

def locate(factory: str, base_dir: Path | None) -> Path:
    """The file of the factory's module: beside the pipeline file, else an installed package.
    Raises ValueError (the caller adds where) when it is in neither place."""
    module = factory.split(":", 1)[0]
    if ".." in module or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module):
        raise ValueError(f"'{module}' is not a module name; give 'module:function' with the "
                         "module beside the pipeline file or installed")
    rel = Path(*module.split("."))
    places = [] if base_dir is None else [Path(base_dir)]
    # Installed packages only: not the current directory, which may be anyone's.
    places += [Path(p) for p in sys.path if p and Path(p).is_dir()
               and ("site-packages" in p or "dist-packages" in p)]
    for place in places:
        for cand in (place / rel.with_suffix(".py"), place / rel / "__init__.py"):
            if cand.is_file():
                resolved = cand.resolve()
                if not resolved.is_relative_to(place.resolve()):
                    raise ValueError(f"module '{module}' resolves to {resolved}, outside "
                                     f"{place} (a symlink?); the module must live there")
                return resolved
    where = f"beside the pipeline file ({base_dir}) or " if base_dir else ""
    raise ValueError(f"module '{module}' not found {where}among installed packages")


def resolve(spec: dict, base_dir: Path | None) -> dict:
    """A raw `model:` mapping with arch python, with `source_file` and `source_sha256` filled in."""
    from compress.artifacts import sha256_file

    factory = spec.get("factory")
    if not isinstance(factory, str) or not re.fullmatch(_FACTORY, factory):
        return spec  # pydantic reports the malformed value
    if spec.get("source_file") or spec.get("source_sha256"):
        raise ValueError("source_file and source_sha256 are filled in by compress; remove them")
    path = locate(factory, base_dir)
    return {**spec, "source_file": str(path), "source_sha256": sha256_file(path)}


def user_model_fields(stages) -> Iterator[tuple[Any, str, PythonSpec]]:
    """(stage, field name, spec) for every `arch: python` model a pipeline's stages build."""
    for st in stages:
        for name in type(st).model_fields:
            value = getattr(st, name, None)
            if isinstance(value, PythonSpec):
                yield st, name, value


def check_user_models(stages, data, trusted: bool, source: str) -> None:
    """Before a run writes anything: consent for every factory, then each one built once and
    run on two samples, so that a missing, failing or mis-sized model is one line, not a
    half-finished run."""
    for st, name, spec in user_model_fields(stages):
        where = f"{source}: stage '{st.id}', field '{name}"
        if not trusted:
            raise ConfigError(f"{where}.arch': 'python' imports and runs {spec.factory} "
                              f"({spec.source_file}); rerun with --trust-code (trust_code=True "
                              "in the Python API) if you trust that code")
        with trust_code():
            try:
                model = build(spec, data.input_shape, data.num_classes)
            except ConfigError as e:
                raise ConfigError(f"{where}.factory': {e}") from e
            check_output(model, data.input_shape, data.num_classes, f"{where}'")


# --- importing and building (runs the user's code) -------------------------------------------

def _load_factory(spec: PythonSpec):
    from compress.artifacts import sha256_file

    if not code_trusted():
        raise ConfigError(f"model factory '{spec.factory}' is code named by a file: importing it "
                          "runs it; pass --trust-code (trust_code=True in the Python API)")
    module_name, attr = spec.factory.split(":")
    path = Path(spec.source_file) if spec.source_file else locate(spec.factory, None)
    if not path.is_file():
        raise ConfigError(f"model factory '{spec.factory}': module file {path} not found")
    if spec.source_sha256 and sha256_file(path) != spec.source_sha256:
        raise ConfigError(f"model factory '{spec.factory}': {path} changed since the checkpoint "
                          "was written; rerun the pipeline (the cache key covers the module)")
    name = f"compress_user.{module_name}.{spec.source_sha256 or 'x'}"[:200]
    if name not in sys.modules:
        mspec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(mspec)
        try:
            mspec.loader.exec_module(module)
        except Exception as e:
            raise ConfigError(f"model factory '{spec.factory}': importing {path} failed "
                              f"({type(e).__name__}: {_first(e)})") from e
        sys.modules[name] = module
    fn = getattr(sys.modules[name], attr, None)
    if fn is None:
        raise ConfigError(f"model factory '{spec.factory}': {path} has no '{attr}'")
    if not callable(fn):
        raise ConfigError(f"model factory '{spec.factory}': '{attr}' is a "
                          f"{type(fn).__name__}, not callable; name a function or class")
    return fn


def build(spec: PythonSpec, input_shape: list[int], num_classes: int):
    """Call the factory with its kwargs; then apply what pruning recorded."""
    from torch import nn

    fn = _load_factory(spec)
    try:
        model = fn(**spec.kwargs)
    except Exception as e:
        raise ConfigError(f"model factory '{spec.factory}' raised {type(e).__name__}: "
                          f"{_first(e)} (kwargs {spec.kwargs})") from e
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory '{spec.factory}' returned a {type(model).__name__}, "
                          "not a torch.nn.Module")
    if spec.pruned_attributes or spec.pruned_shapes:
        apply_pruning(model, spec.pruned_attributes or {}, spec.pruned_shapes or {})
    return model


def check_output(model, input_shape: list[int], num_classes: int, what: str) -> None:
    """One forward pass on zeros: the model must give (batch, num_classes) logits."""
    import torch

    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()  # eval: two zero samples must not move batch-norm statistics
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, device=device))
    except Exception as e:
        raise ConfigError(f"{what}: the model fails on inputs shaped {[2, *input_shape]} "
                          f"({type(e).__name__}: {_first(e)})") from e
    finally:
        model.train(was_training)
    shape = list(getattr(out, "shape", []))
    if shape != [2, num_classes]:
        raise ConfigError(f"{what}: the model outputs {shape or type(out).__name__} for a batch "
                          f"of 2, but the data has {num_classes} classes; its output must be "
                          f"[batch, {num_classes}] logits")


# --- pruned shapes ---------------------------------------------------------------------------

def _int_attrs(module) -> dict[str, Any]:
    out = {}
    for k, v in vars(module).items():
        if k.startswith("_") or isinstance(v, bool):
            continue
        if isinstance(v, int) or (isinstance(v, tuple) and v and all(
                isinstance(i, int) and not isinstance(i, bool) for i in v)):
            out[k] = v
    return out


def record_pruning(fresh, pruned) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """What differs between a freshly built model and its pruned copy: integer layer
    attributes (out_channels, groups, ...) and the shapes of weights and buffers."""
    fresh_mods = dict(fresh.named_modules())
    attrs = {}
    for name, m in pruned.named_modules():
        before, after = _int_attrs(fresh_mods[name]), _int_attrs(m)
        changed = {k: list(v) if isinstance(v, tuple) else v
                   for k, v in after.items() if before.get(k) != v}
        if changed:
            attrs[name] = changed
    fresh_sd = fresh.state_dict()
    shapes = {k: list(v.shape) for k, v in pruned.state_dict().items()
              if list(fresh_sd[k].shape) != list(v.shape)}
    return attrs, shapes


def apply_pruning(model, attrs: dict[str, dict[str, Any]], shapes: dict[str, list[int]]) -> None:
    import torch
    from torch import nn

    mods = dict(model.named_modules())
    for name, changed in attrs.items():
        for k, v in changed.items():
            setattr(mods[name], k, tuple(v) if isinstance(v, list) else v)
    for full, shape in shapes.items():
        owner, _, leaf = full.rpartition(".")
        m = mods[owner]
        old = getattr(m, leaf)
        new = torch.empty(shape, dtype=old.dtype)
        if isinstance(old, nn.Parameter):
            setattr(m, leaf, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            m.register_buffer(leaf, new)


def _first(e: Exception) -> str:
    return (str(e).splitlines() or [""])[0][:200]
