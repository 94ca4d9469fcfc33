"""The pipeline reference (docs/reference.md), generated from the config classes' fields and
descriptions, so the docs cannot drift from the code: `python -m compress.cli.reference`
(`make docs`) rewrites the page and a test fails when the committed page is stale. It reads
every stage, so it lives on the command line's side, above the stages, not in report/."""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", "`") for a in typing.get_args(tp))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        if origin is list and typing.get_origin(typing.get_args(tp)[0]) is typing.Annotated:
            return "list of stages (below)"
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _default(field) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return f"{type(value).__name__} defaults"
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if value is None:
        return "`null`"
    return f"`{value}`"


def fields_table(cls: type[BaseModel], skip: set[str] = frozenset()) -> str:
    """A Markdown table of a config class's fields: name, type, default, description."""
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        desc = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
    return "\n".join(rows)


def _doc(obj: Any) -> str:
    return " ".join((obj.__doc__ or "").split())


def render() -> str:
    """The whole reference page."""
    from compress.config import GatesConfig, MetricGate, PipelineConfig, SpeedupGate
    from compress.data import DataConfig
    from compress.measure.energy import EnergyConfig
    from compress.stages import STAGES

    out = ["# Pipeline reference", "",
           "Generated from the config classes by `python -m compress.cli.reference`; do not "
           "edit by hand (a test fails when this page is stale). Every field here is also a "
           "command-line option of the stage's command (`compress <stage> --help`).", "",
           "## Pipeline file", "", fields_table(PipelineConfig), "",
           "## Data sources (`data:`)", ""]
    for cls in typing.get_args(typing.get_args(DataConfig)[0]):
        source = cls.model_fields["source"].default
        out += [f"### `source: {source}`", "", _doc(cls), "", fields_table(cls, {"source"}), ""]
    out += ["## Stages", ""]
    for name in sorted(STAGES):
        st = STAGES[name]
        module = sys.modules[st.fn.__module__]
        summary = (module.__doc__ or "").strip().split("\n\n")[0]
        out += [f"### `stage: {name}`", "", " ".join(summary.split()), "",
                f"Produces: {st.produces}. Command: `compress {name.replace('_', '-')}`.", "",
                fields_table(st.config_cls, {"stage"}), ""]
    out += ["## Gates (`gates:`)", "", _doc(GatesConfig), "", fields_table(GatesConfig), "",
            "### A metric gate (`gates.metrics[]`)", "", fields_table(MetricGate), "",
            "### A speed-up gate (`gates.speedups[]`)", "", fields_table(SpeedupGate), "",
            "## Energy (`energy:`)", "", _doc(EnergyConfig), "", fields_table(EnergyConfig), ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(render())
    print(f"wrote {PAGE}")
