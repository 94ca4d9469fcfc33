"""The search space: which student fields, recipe fields, prune ratio and int8 setting a trial
may vary, and how Optuna samples them. Plain pydantic (no torch, no optuna at import).

A value is fixed (`width: 32`), a range (`{low: 1, high: 3}`, `step`, `log`: integers when
`low`, `high` and `step` are integers) or a choice list (`{choices: [16, 24, 32]}`, at least two
distinct values). In `model:` any field of the family named by `arch` may vary; for
`arch: python` the factory's `kwargs` may.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from compress.artifacts import sha256_json
from compress.models.specs import parse_model_spec

INT8 = ("off", "auto", "qdq", "qoperator")  # off = fp32; auto = the faster, measured untrained
RANGE_KEYS = {"low", "high", "step", "log"}
# Fields pruning fills in: a space that set them would fight the pruner.
NOT_SEARCHABLE = {"arch", "blocks", "stem", "factory", "source_file", "source_sha256",
                  "pruned_attributes", "pruned_shapes"}


@dataclass(frozen=True)
class Param:
    """One searched dimension: a range (low/high/step/log) or a choice list."""

    name: str  # dotted: model.width, model.kwargs.hidden, temperature, ...
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple | None = None

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(
            isinstance(v, int) and not isinstance(v, bool)
            for v in (self.low, self.high, self.step) if v is not None)

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            if any(isinstance(c, list) for c in self.choices):
                # Optuna's categorical values are scalars: a list (mlp `hidden`) as JSON text
                return json.loads(trial.suggest_categorical(
                    self.name, [json.dumps(c) for c in self.choices]))
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list:
        return list(self.choices) if self.choices is not None else [self.low, self.high]


def _is_param(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and (
        set(value) <= RANGE_KEYS or set(value) == {"choices"})


def parse_param(name: str, value: Any) -> Param:
    """A range or choice mapping as a Param; ValueError (naming the field) when it is not one."""
    if "choices" in value:
        choices = value["choices"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise ValueError(f"{name}: a choice list needs at least two values, got {choices!r}; "
                             "give a single value as a plain value instead")
        if len({repr(c) for c in choices}) < len(choices):
            raise ValueError(f"{name}: the choice list {choices!r} repeats a value")
        if not all(c is None or isinstance(c, bool | int | float | str | list) for c in choices):
            raise ValueError(f"{name}: choices must be numbers, strings, booleans, lists or "
                             "null")
        return Param(name, choices=tuple(choices))
    if "low" not in value or "high" not in value:
        raise ValueError(f"{name}: a range needs both low and high, got {value!r}")
    low, high, step = value["low"], value["high"], value.get("step")
    nums = [v for v in (low, high, step) if v is not None]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in nums):
        raise ValueError(f"{name}: low, high and step must be numbers, got {value!r}")
    if not low < high:
        what = "empty" if low == high else "inverted"
        raise ValueError(f"{name}: the range [{low}, {high}] is {what}; low must be below high "
                         "(a single value: give it as a plain value)")
    if step is not None and (step <= 0 or step > high - low):
        raise ValueError(f"{name}: step {step} must be > 0 and at most high - low")
    log = bool(value.get("log", False))
    if log and (low <= 0 or step is not None):
        raise ValueError(f"{name}: log ranges need low > 0 and no step")
    return Param(name, low=low, high=high, step=step, log=log)


class SearchSpace(BaseModel):
    """What a trial may vary. Unset recipe fields take the stage's own value (its `epochs`,
    `temperature`, `alpha`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: dict[str, Any] = Field(
        description="the student: `arch` plus fixed values, ranges {low, high[, step, log]} or "
        "{choices: [...]} for its fields (for arch: python, inside `kwargs`)")
    temperature: Any = Field(None, description="distillation temperature: value, range or "
                             "choices; null = the stage's `temperature`")
    alpha: Any = Field(None, description="weight of the teacher term: value, range or choices; "
                       "null = the stage's `alpha`")
    epochs: Any = Field(None, description="full distillation epochs: value, range or choices; "
                        "null = the stage's `epochs`")
    prune_ratio: Any = Field(0.0, description="structured prune ratio after distillation (0 = "
                             "none): value, range or choices")
    int8: Any = Field("auto", description=f"one of {list(INT8)} or {{choices: [...]}} of them; "
                      "auto = the faster of fp32, QDQ and QOperator, timed on the untrained graph")

    @model_validator(mode="after")
    def _check(self):
        self.params()  # every range and choice list parsed: errors name the field
        self._check_model()
        for name, bounds in (("temperature", (0, 100)), ("alpha", (0, 1)),
                             ("epochs", (1, 10_000)), ("prune_ratio", (0, 0.95))):
            for v in self._values(name):
                if not isinstance(v, int | float) or isinstance(v, bool) or not (
                        bounds[0] <= v <= bounds[1]):
                    raise ValueError(f"{name}: {v!r} is outside [{bounds[0]}, {bounds[1]}]")
        for v in self._values("int8"):
            if v not in INT8:
                raise ValueError(f"int8: {v!r} is not one of {list(INT8)}")
        if self.epochs is not None and any(not isinstance(v, int) for v in
                                           self._values("epochs")):
            raise ValueError("epochs: whole numbers only")
        return self

    def _values(self, name: str) -> list:
        value = getattr(self, name)
        if value is None:
            return []
        return parse_param(name, value).extremes() if _is_param(value) else [value]

    def _model_fields(self) -> tuple[dict, str]:
        arch = self.model.get("arch")
        if arch == "python":
            return self.model.get("kwargs") or {}, "model.kwargs"
        return {k: v for k, v in self.model.items() if k != "arch"}, "model"

    def _check_model(self) -> None:
        from compress.models.specs import AnySpec

        arch = self.model.get("arch")
        families = {a: cls for cls in AnySpec.__args__
                    for a in [cls.model_fields["arch"].default]}
        if arch not in families:
            raise ValueError(f"model.arch: {arch!r} is not one of {sorted(families)}")
        known = set(families[arch].model_fields)
        fields, prefix = self._model_fields()
        for key, value in (self.model.items() if arch != "python" else fields.items()):
            if arch != "python" and key not in known:
                raise ValueError(f"model.{key}: unknown field of arch {arch}; known: "
                                 f"{sorted(known - NOT_SEARCHABLE)}")
            if _is_param(value) and arch != "python" and key in NOT_SEARCHABLE:
                raise ValueError(f"model.{key}: cannot be searched (pruning sets it)")
        # Every extreme value, the others at their first, must make a valid spec.
        base = self.concrete_model({p.name: p.extremes()[0] for p in self.params()})
        for p in self.params():
            if not p.name.startswith("model."):
                continue
            for v in p.extremes():
                trial = self.concrete_model({**{q.name: q.extremes()[0] for q in self.params()},
                                             p.name: v})
                try:
                    parse_model_spec(trial)
                except ValidationError as e:
                    err = e.errors()[0]
                    raise ValueError(f"{p.name}: {v!r} makes an invalid model "
                                     f"({'.'.join(map(str, err['loc']))}: {err['msg']})") from e
        try:
            parse_model_spec(base)
        except ValidationError as e:
            err = e.errors()[0]
            raise ValueError(f"model: {'.'.join(map(str, err['loc']))}: {err['msg']}") from e

    def params(self) -> list[Param]:
        """Every searched dimension, in a stable order."""
        out = []
        fields, prefix = self._model_fields()
        for key, value in fields.items():
            if _is_param(value):
                out.append(parse_param(f"{prefix}.{key}", value))
        for name in ("temperature", "alpha", "epochs", "prune_ratio", "int8"):
            value = getattr(self, name)
            if _is_param(value):
                out.append(parse_param(name, value))
        if not out:
            raise ValueError("the space searches nothing: give at least one field a range "
                             "{low, high} or {choices: [...]}")
        return out

    def concrete_model(self, values: dict[str, Any]) -> dict:
        """The `model:` mapping with the sampled `values` (dotted names) filled in."""
        model = {k: v for k, v in self.model.items() if not _is_param(v)}
        kwargs = self.model.get("kwargs")
        if isinstance(kwargs, dict):
            model["kwargs"] = {k: v for k, v in kwargs.items() if not _is_param(v)}
        for name, v in values.items():
            parts = name.split(".")
            if parts[0] != "model":
                continue
            target = model["kwargs"] if parts[1] == "kwargs" else model
            target[parts[-1]] = v
        return model

    def concrete(self, values: dict[str, Any], defaults: dict[str, Any]) -> dict:
        """A trial's whole configuration: model spec mapping, recipe and compression."""
        out = {"model": self.concrete_model(values)}
        for name in ("temperature", "alpha", "epochs", "prune_ratio", "int8"):
            value = getattr(self, name)
            if name in values:
                out[name] = values[name]
            elif value is None:
                out[name] = defaults[name]
            else:
                out[name] = value
        if isinstance(out["epochs"], float) and out["epochs"].is_integer():
            out["epochs"] = int(out["epochs"])
        return out

    def sample(self, trial, defaults: dict[str, Any]) -> dict:
        """One configuration, drawn by the Optuna `trial`."""
        return self.concrete({p.name: p.suggest(trial) for p in self.params()}, defaults)

    def sha256(self) -> str:
        return sha256_json(self.model_dump(mode="json"))

    def size(self) -> float:
        """Number of distinct configurations (inf for a continuous range)."""
        n = 1.0
        for p in self.params():
            if p.choices is not None:
                n *= len(p.choices)
            elif p.is_int:
                n *= (p.high - p.low) // (p.step or 1) + 1
            else:
                n = math.inf
        return n
