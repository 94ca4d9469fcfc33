"""A pydantic validation error as one sentence, for the YAML, the command line and the API
alike: the field's path without the tags pydantic inserts for unions, the config class whose
fields apply there ('did you mean ...?'), and plain words for the usual error types."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel

from compress.stages.base import ID_PATTERN

_TAGS = ("stage", "source", "arch")


def walk_error_path(raw: Any, loc: tuple) -> tuple[list[str], Any]:
    """Drop the tags pydantic inserts for discriminated unions; return (path, innermost node)."""
    path, node = [], raw
    for part in loc:
        if isinstance(node, dict) and part not in node and any(node.get(t) == part for t in _TAGS):
            continue  # a union tag such as 'train' or 'resnet', not a real key
        path.append(part)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return path, node


def _models_in(tp) -> list[type[BaseModel]]:
    """The pydantic classes a field annotation can hold (through Annotated, unions, lists)."""
    origin = typing.get_origin(tp)
    if origin is Annotated or origin is list:
        return _models_in(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _models_in(a)]
    return [tp] if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _pick(candidates: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    if len(candidates) == 1:
        return candidates[0]
    if isinstance(node, dict):
        for c in candidates:
            for tag in _TAGS:
                f = c.model_fields.get(tag)
                if f is not None and node.get(tag) is not None and f.default == node.get(tag):
                    return c
    return None


def class_at(root: Any, raw: Any, path: list) -> type[BaseModel] | None:
    """The config class whose fields apply at `path` in `raw` (for 'did you mean' hints)."""
    candidates = _models_in(root)
    cls, node = _pick(candidates, raw), raw
    for part in path[:-1]:
        indexable = isinstance(node, list) and isinstance(part, int) and part < len(node)
        node = node[part] if indexable or (isinstance(node, dict) and part in node) else None
        if not isinstance(part, int):
            field = cls.model_fields.get(part) if cls else None
            candidates = _models_in(field.annotation) if field else []
        cls = _pick(candidates, node)
    return cls


def error_message(e: dict, path: list, cls: type | None) -> str:
    """One pydantic error as a sentence; `cls` is the model whose fields apply at `path`."""
    if e["type"] == "extra_forbidden":
        known = list(cls.model_fields) if cls else []
        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (
            f"; valid fields: {', '.join(known)}" if known else "")
        return f"unknown field '{path[-1]}'{hint}"
    if e["type"] == "missing":
        return "required field is missing"
    if e["type"] == "union_tag_invalid":
        ctx = e.get("ctx", {})
        return (f"unknown {ctx.get('discriminator', 'value').strip(chr(39))} "
                f"'{ctx.get('tag')}'; choose one of {ctx.get('expected_tags')}")
    if e["type"] == "union_tag_not_found":
        return f"missing {e.get('ctx', {}).get('discriminator', 'tag')} field"
    if e["type"] == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") == ID_PATTERN:
        return (f"{e.get('input')!r} is not a plain folder name (it names an output folder): "
                "use up to 64 letters, digits, '_' and '-', not starting with '-'")
    got = e.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return e["msg"].removeprefix("Value error, ") + shown
