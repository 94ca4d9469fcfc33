"""Click options generated from a stage's config class, so that `compress <stage>` and the YAML
step share one validation, one set of defaults and one help text."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import click
import yaml
from pydantic import BaseModel, ValidationError

from compress.errors import ConfigError


def _unwrap_optional(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


class _Null:
    """An option given as `null` (or `none`, `~`): unlike an option not given (None, so the
    default applies), it sets the field to None, as `field: null` does in YAML."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()
# The plain scalars YAML reads as null (YAML 1.1, as PyYAML's safe_load), and Python's spelling.
NULL_WORDS = frozenset({"null", "Null", "NULL", "~", "none", "None"})


def given_options(values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave, with `null` as None: what `model_validate` should see. A
    repeatable option (a list field) given once as `null` is None too, not a list of it."""

    def plain(v):
        if v is NULL or (isinstance(v, tuple) and len(v) == 1 and v[0] is NULL):
            return None
        return v

    return {k: plain(v) for k, v in values.items() if v is not None and v != ()}


class Nullable(click.ParamType):
    """Wraps an option's type for a field that accepts None: `null` gives NULL."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = f"{inner.name}|null"

    def convert(self, value, param, ctx):
        if value is NULL or (isinstance(value, str) and value.strip() in NULL_WORDS):
            return NULL
        return self.inner.convert(value, param, ctx)


class YamlValue(click.ParamType):
    """A structured value typed inline as YAML, e.g. --model '{arch: resnet, width: 16}'."""

    name = "yaml"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            loaded = yaml.safe_load(value)
        except yaml.MarkedYAMLError as e:
            at = f" at column {e.problem_mark.column + 1}" if e.problem_mark else ""
            self.fail(f"not valid inline YAML{at}: {e.problem} (got {value!r})", param, ctx)
        except yaml.YAMLError as e:
            self.fail(f"not valid inline YAML ({type(e).__name__}; got {value!r})", param, ctx)
        return NULL if loaded is None else loaded


def config_params(cls: type[BaseModel], skip: set[str]) -> list[click.Option]:
    """One option per field of `cls`, in field order (defaults stay in the config class)."""
    params = []
    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        tp, optional = _unwrap_optional(field.annotation)
        default = field.get_default(call_default_factory=True)
        shown = "null" if default is None else default
        if isinstance(default, BaseModel):
            shown = yaml.safe_dump(default.model_dump(mode="json", exclude_none=True),
                                   default_flow_style=True, sort_keys=False).strip()
        help_text = (f"{field.description or ''} [required]" if field.is_required()
                     else f"{field.description or ''} [default: {shown}]").strip()
        kwargs: dict[str, Any] = {"default": None, "help": help_text}
        origin = typing.get_origin(tp)
        if tp is bool:
            params.append(click.Option([f"{flag}/--no-{flag[2:]}", name], **kwargs))
            continue
        if origin is Literal:
            kwargs["type"] = click.Choice([str(a) for a in typing.get_args(tp)])
        elif tp in (int, float, str):
            kwargs["type"] = tp
        elif origin is list and typing.get_args(tp)[0] in (int, float, str):
            kwargs["type"] = typing.get_args(tp)[0]
            kwargs["multiple"] = True
            kwargs["default"] = ()
        elif origin is list and typing.get_origin(typing.get_args(tp)[0]) is Literal:
            # e.g. --modes dynamic --modes static
            choices = typing.get_args(typing.get_args(tp)[0])
            kwargs["type"] = click.Choice([str(a) for a in choices])
            kwargs["multiple"] = True
            kwargs["default"] = ()
        else:
            kwargs["type"] = YamlValue()
        if optional:  # `--patience null` means what `patience: null` means in YAML
            kwargs["type"] = Nullable(click.types.convert_type(kwargs.get("type")))
        params.append(click.Option([flag, name], **kwargs))
    return params


def config_options(cls: type[BaseModel], skip: set[str]):
    """Decorator adding one option per field of `cls`, where the decorator stands."""

    def deco(fn):
        # click reverses the decorators' list when it builds the command
        fn.__dict__.setdefault("__click_params__", []).extend(reversed(config_params(cls, skip)))
        return fn

    return deco


def lazy_options(config: str, skip: set[str]):
    """Decorator for a `LazyOptionsCommand`: the options of a config class, added after the
    command's own options when the command first needs its parameters (help, parsing), so that
    listing the commands imports no stage module. `config`: a stage's name, or
    'module:Class' of a module in the compress package ('measure.energy:EnergyConfig')."""

    def deco(fn):
        fn.__dict__.setdefault("__lazy_options__", []).insert(0, (config, frozenset(skip)))
        return fn

    return deco


def config_class(config: str) -> type[BaseModel]:
    """The class `lazy_options` names: 'module:Class' (in compress), or a stage's name (its
    config class)."""
    import importlib

    if ":" in config:
        module, name = config.split(":")
        return getattr(importlib.import_module(f"compress.{module}"), name)
    from compress.stages import stage_def

    return stage_def(config).config_cls


class LazyOptionsCommand(click.Command):
    """A command whose config-class options (`lazy_options`) are built on first use."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        lazy = getattr(self.callback, "__lazy_options__", None)
        if lazy:
            for config, skip in lazy:
                self.params.extend(config_params(config_class(config), set(skip)))
            lazy.clear()
        return super().get_params(ctx)


def build_config(cls: type[BaseModel], command: str, values: dict[str, Any]):
    """Validate CLI values into `cls`; errors name the option, like YAML errors name the field."""
    given = given_options(values)
    try:
        return cls.model_validate(given)
    except ValidationError as e:
        raise ConfigError(f"{command}: option {option_error(cls, given, e)}") from e


def option_error(cls: Any, given: Any, err: ValidationError, option: str = "") -> str:
    """'--lr: Input should be greater than 0 (got -1)', or with a field inside the option."""
    from compress.validation import class_at, error_message, walk_error_path

    e = err.errors()[0]
    path, _ = walk_error_path(given, e["loc"])
    if not option:
        option, given_path = "--" + str(path[0]).replace("_", "-"), path[1:]
    else:
        given_path = path
    field = f", field '{'.'.join(map(str, given_path))}'" if given_path else ""
    msg = error_message(e, path, class_at(cls, given, path) if path else None)
    return f"{option}{field}: {msg}"
