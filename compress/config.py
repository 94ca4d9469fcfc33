"""Pipeline files: YAML (safe_load only) validated into typed, frozen pydantic models.

Every error names the file, the stage id and the field, on one line, with the valid choices or a
close match where there is one. References between stages are checked at load time: a stage may
only consume earlier stages, and only artifacts of a kind it understands.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from compress.data import TEXT_SOURCES, DataConfig
from compress.errors import ConfigError
from compress.launch import pipeline_options
from compress.measure.energy import EnergyConfig
from compress.renames import renamed_fields
from compress.stages import STAGES
from compress.stages.base import ID_PATTERN, metric_names
from compress.validation import class_at, error_message, walk_error_path

_STAGE_CONFIGS = tuple(d.config_cls for d in STAGES.values())
StageUnion = Annotated[Union[_STAGE_CONFIGS], Field(discriminator="stage")]  # noqa: UP007


# compress.measure.runtimes.RUNTIME_NAMES (not imported: the config stays light)
Runtime = Literal["onnxruntime", "openvino", "onnxruntime-web"]
RUNTIME_HELP = ("runtime the figure is measured in (the bench's `runtimes:` must list it); "
                "onnxruntime-web runs 1 thread")


class MetricGate(BaseModel):
    """A bound on any metric a stage reports, named `<stage id>.<metric>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="e.g. teacher.test_accuracy_pct or bench.teacher.b1_t1.p50_ms")
    min: float | None = None
    max: float | None = None
    runtime: Runtime = Field("onnxruntime", description=RUNTIME_HELP + "; the metric is then "
                             "read from the bench's runtime table: bench.MODEL.RUNTIME.rest")

    @model_validator(mode="after")
    def _bounded(self):
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if "." not in self.metric:
            raise ValueError("metric must be '<stage id>.<metric name>'")
        if self.runtime != "onnxruntime" and self.metric.count(".") < 2:
            raise ValueError("a metric read in another runtime is '<bench id>.<model>.<metric>'")
        return self

    def read_as(self) -> str:
        """The metric's name in the stage's metrics: the runtime after the model id."""
        if self.runtime == "onnxruntime":
            return self.metric
        sid, model, rest = self.metric.split(".", 2)
        return f"{sid}.{model}.{self.runtime}.{rest}"


Cache = Literal["warm", "cold"]
CACHE_HELP = ("latency read: warm (the model runs steadily) or cold (the bench evicted the CPU "
              "caches before each call, as between other work; needs the bench's cold_runs)")


class SpeedupGate(BaseModel):
    """`model` must be at least `min` times faster (p50) than `than` in the gates' bench."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="model id in the bench, e.g. student_int8")
    than: str = Field(description="model id it is compared with, e.g. student_fp32")
    batch_size: int = Field(1, ge=1)
    threads: int = Field(1, ge=0)
    min: float = Field(1.0, gt=0, description="required p50 speed-up (1.0 = not slower)")
    cache: Cache = Field("warm", description=CACHE_HELP)
    runtime: Runtime = Field("onnxruntime", description=RUNTIME_HELP + " (both models in it)")

    @model_validator(mode="after")
    def _warm_elsewhere(self):
        if self.runtime != "onnxruntime" and self.cache == "cold":
            raise ValueError(f"cache: cold is measured in onnxruntime only, not {self.runtime}")
        return self


class GatesConfig(BaseModel):
    """Conditions the run must meet; a failing gate makes `compress run` exit 1.

    The comparison gates read a bench stage: `candidate` against `baseline` (model ids in that
    bench; default the last and the first model), at `batch_size` and `threads`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bench: str | None = Field(None, description="bench stage id; default: the last bench stage")
    baseline: str | None = Field(None, description="model id in the bench; default: the first")
    candidate: str | None = Field(None, description="model id in the bench; default: the last")
    batch_size: int = Field(1, ge=1, description="latency setting the speed-up is read at")
    threads: int = Field(1, ge=0, description="latency setting the speed-up is read at")
    cache: Cache = Field("warm", description=CACHE_HELP)
    min_accuracy_pct: float | None = Field(None, ge=0, le=100)
    max_test_accuracy_drop_pts: float | None = Field(
        None, ge=0, le=100, description="test accuracy of `baseline` minus `candidate`, as the "
        "bench measured both in ORT (was `max_accuracy_drop_pts`)")
    min_latency_speedup: float | None = Field(None, gt=0)
    min_size_reduction: float | None = Field(None, gt=0)
    max_latency_p50_ms: float | None = Field(None, gt=0)
    min_attribution_fidelity: float | None = Field(
        None, ge=-1, le=1, description="Spearman of the candidate's attribution maps against "
        "the teacher's, read from the explain stage (candidate: `candidate` if that stage "
        "explains it, else its last model)")
    explain: str | None = Field(None, description="explain stage the fidelity gate reads; "
                                "default: the last explain stage")
    speedups: list[SpeedupGate] = Field(
        default_factory=list, description="pairwise speed-ups, e.g. int8 vs its own fp32"
    )
    metrics: list[MetricGate] = Field(default_factory=list)

    _renamed = renamed_fields("gates", {"max_accuracy_drop_pts": "max_test_accuracy_drop_pts"})


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=ID_PATTERN, description="output folder under exported/")
    data: DataConfig
    stages: list[StageUnion] = Field(min_length=1)
    gates: GatesConfig | None = None
    energy: EnergyConfig = Field(default_factory=EnergyConfig,
                                 description="power model, idle power, grid carbon intensity")


def format_validation_error(source: str, raw: Any, err: ValidationError) -> str:
    errors = err.errors()
    e = errors[0]
    path, _ = walk_error_path(raw, e["loc"])
    head, rest = "pipeline", path
    if len(path) >= 2 and path[0] == "stages" and isinstance(path[1], int):
        item = raw["stages"][path[1]]
        sid = item.get("id") if isinstance(item, dict) else None
        head, rest = (f"stage '{sid}'" if sid else f"stages[{path[1]}]"), path[2:]
    elif path and path[0] in ("data", "gates", "energy"):
        head, rest = path[0], path[1:]
    field = ".".join(str(p) for p in rest)
    msg = error_message(e, path, class_at(PipelineConfig, raw, path) if path else None)
    more = f" [+{len(errors) - 1} more error(s)]" if len(errors) > 1 else ""
    where = f"{head}, field '{field}'" if field else head
    return f"{source}: {where}: {msg}{more}"


def _cycle(by_id: dict, start: str, target: str) -> list[str] | None:
    """The chain of references that leads from stage `start` back to `target`, if any."""
    stack, seen = [[start]], set()
    while stack:
        chain = stack.pop()
        if chain[-1] == target:
            return chain
        if chain[-1] in seen or chain[-1] not in by_id:
            continue
        seen.add(chain[-1])
        stack += [chain + [r] for ids in by_id[chain[-1]].referenced_ids().values() for r in ids]
    return None


def _check_metric_gate(metric: str, by_id: dict, source: str) -> None:
    sid, name = metric.split(".", 1)
    if sid not in by_id:
        raise ConfigError(f"{source}: gates, field 'metrics': '{metric}' names stage '{sid}', "
                          f"which does not exist (stages: {', '.join(by_id)})")
    names = metric_names(by_id[sid])
    if names is not None and name not in names:
        close = difflib.get_close_matches(name, sorted(names), n=1)
        hint = f"did you mean '{sid}.{close[0]}'? " if close else ""
        shown = sorted(names)[:12] + (["..."] if len(names) > 12 else [])
        raise ConfigError(f"{source}: gates, field 'metrics': stage '{sid}' has no metric "
                          f"'{name}'; {hint}(it reports: {', '.join(shown)})")


_DATA_NOUN = {"arrays": "array data (inputs and labels: digits, mnist1d, npz, csv, "
                        "image_folder)",
              "text": "text (sentences: pydoc)"}
_KIND_NOUN = {"checkpoint": "a checkpoint", "onnx": "an ONNX model", "bench": "a benchmark",
              "ort": "an ORT-format model", "explain": "attribution maps"}


def check_graph(cfg: PipelineConfig, source: str) -> None:
    """Stage ids unique; each reference names an earlier stage of a kind the field accepts."""
    from compress.gates import gate_bench

    by_id = {st.id: st for st in cfg.stages}
    produced: dict[str, str] = {}
    kind = "text" if cfg.data.source in TEXT_SOURCES else "arrays"
    for st in cfg.stages:
        if type(st).data_kind != kind:
            fits = sorted(n for n, d in STAGES.items() if d.config_cls.data_kind == kind)
            needs = _DATA_NOUN[type(st).data_kind]
            raise ConfigError(
                f"{source}: stage '{st.id}': a {st.stage} stage needs {needs}"
                f", but data source '{cfg.data.source}' is {_DATA_NOUN[kind]}; the stages for it: "
                f"{', '.join(fits)}")
        if st.id in produced:
            raise ConfigError(f"{source}: stage '{st.id}': id used twice; ids must be unique")
        for fld, ids in st.referenced_ids().items():
            accepts = type(st).references[fld]
            for ref in ids:
                if ref == st.id:
                    raise ConfigError(f"{source}: stage '{st.id}', field '{fld}': a stage "
                                      "cannot consume itself")
                if ref not in produced:
                    cycle = _cycle(by_id, ref, st.id)
                    if cycle:
                        raise ConfigError(
                            f"{source}: stage '{st.id}', field '{fld}': cyclic reference "
                            f"{' -> '.join([st.id, *cycle])}; a stage can only consume stages "
                            "above it")
                    why = "is defined later; move it above" if ref in by_id else "does not exist"
                    known = ", ".join(produced) or "none"
                    raise ConfigError(f"{source}: stage '{st.id}', field '{fld}': stage '{ref}' "
                                      f"{why} (earlier stages: {known})")
                if produced[ref] not in accepts:
                    raise ConfigError(
                        f"{source}: stage '{st.id}', field '{fld}': stage '{ref}' produces "
                        f"{_KIND_NOUN[produced[ref]]}, but this field needs "
                        + " or ".join(_KIND_NOUN[k] for k in sorted(accepts))
                        + ("; add an export stage in between" if "onnx" in accepts else "")
                    )
        produced[st.id] = STAGES[st.stage].produces
    pipeline_options(cfg.stages, source)  # the training stages must agree on one process group
    g = cfg.gates
    if g is not None:
        for m in g.metrics:
            _check_metric_gate(m.read_as(), by_id, source)
        if g.min_attribution_fidelity is not None or g.explain:
            from compress.gates import gate_explain

            if gate_explain(cfg.stages, g) is None:
                what = f"'{g.explain}' is not an explain stage" if g.explain else (
                    "there is no explain stage")
                raise ConfigError(f"{source}: gates, field 'min_attribution_fidelity': {what}; "
                                  "the fidelity gate reads an explain stage")
        compares = any(v is not None for v in (g.min_accuracy_pct, g.max_test_accuracy_drop_pts,
                       g.min_latency_speedup, g.min_size_reduction, g.max_latency_p50_ms))
        if compares or g.bench or g.baseline or g.candidate or g.speedups:
            bench = gate_bench(cfg.stages, g)
            if bench is None:
                what = f"'{g.bench}' is not a bench stage" if g.bench else "there is no bench stage"
                raise ConfigError(f"{source}: gates, field 'bench': {what}; gates on accuracy, "
                                  "latency and size read a bench stage")
            for fld in ("baseline", "candidate"):
                mid = getattr(g, fld)
                known = bench.model_ids()  # peers too: "at least 2x faster than ORT's int8"
                if mid is not None and mid not in known:
                    raise ConfigError(f"{source}: gates, field '{fld}': '{mid}' is not among "
                                      f"bench '{bench.id}' models ({', '.join(known)})")
            if g.batch_size not in bench.batch_sizes or g.threads not in bench.threads:
                raise ConfigError(f"{source}: gates: bench '{bench.id}' does not measure batch "
                                  f"{g.batch_size} with {g.threads} thread(s); add them to its "
                                  "batch_sizes/threads or change the gate's")
            for where, cache in [("gates, field 'cache'", g.cache if compares else "warm")] + [
                    (f"gates, speedups[{i}], field 'cache'", sg.cache)
                    for i, sg in enumerate(g.speedups)]:
                if cache == "cold" and not bench.cold_runs:
                    raise ConfigError(f"{source}: {where}: cold, but bench '{bench.id}' has "
                                      "cold_runs: 0; give it cold_runs (e.g. 30) or read warm")
            for i, sg in enumerate(g.speedups):
                for fld in ("model", "than"):
                    if getattr(sg, fld) not in bench.models:
                        raise ConfigError(
                            f"{source}: gates, speedups[{i}], field '{fld}': "
                            f"'{getattr(sg, fld)}' is not among bench '{bench.id}' models "
                            f"({', '.join(bench.models)})")
                if sg.batch_size not in bench.batch_sizes or sg.threads not in bench.threads:
                    raise ConfigError(
                        f"{source}: gates, speedups[{i}]: bench '{bench.id}' does not measure "
                        f"batch {sg.batch_size} with {sg.threads} thread(s)")
                if sg.runtime not in bench.runtimes:
                    raise ConfigError(
                        f"{source}: gates, speedups[{i}], field 'runtime': bench '{bench.id}' "
                        f"does not measure {sg.runtime}; add it to its runtimes: "
                        f"{[*bench.runtimes, sg.runtime]}")


def parse_pipeline(raw: Any, source: str, base_dir: Path | None = None) -> PipelineConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with name, data and stages at the top, "
                          f"got {type(raw).__name__}")
    raw = _resolve_paths(raw, base_dir, source)
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(source, raw, e)) from e
    check_graph(cfg, source)
    return cfg


def _resolve_paths(raw: dict, base_dir: Path | None, source: str = "pipeline") -> dict:
    data = raw.get("data")
    for key in ("path", "test_path"):  # a data file, and a CSV's fixed test file
        if base_dir is not None and isinstance(data, dict) and isinstance(data.get(key), str):
            p = Path(data[key]).expanduser()
            if not p.is_absolute():
                data = {**data, key: str((base_dir / p).resolve())}
                raw = {**raw, "data": data}
    if isinstance(raw.get("stages"), list):
        raw = {**raw, "stages": [_resolve_stage(st, base_dir, source) for st in raw["stages"]]}
    return raw


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key_column(line: str) -> int:
    """0-based column of a line's first key: after any '- ' list markers."""
    i = _indent(line)
    while line[i:].startswith("- "):
        i += 2 + _indent(line[i + 2:])
    return i


def yaml_hint(text: str, e: yaml.MarkedYAMLError) -> str | None:
    """Plain words for PyYAML's usual messages about indentation ('expected <block end>, but
    found ...', 'mapping values are not allowed here'): the line and the line above it."""
    mark = e.problem_mark
    lines = text.splitlines()
    if mark is None or mark.line >= len(lines):
        return None
    line = lines[mark.line]
    if "\t" in line[: _indent(line) + 1]:
        return f"line {mark.line + 1} is indented with a tab; YAML indents with spaces only"
    above = next((ln for ln in reversed(lines[: mark.line])
                  if ln.strip() and not ln.lstrip().startswith("#")), None)
    problem = e.problem or ""
    nested = problem.startswith("mapping values are not allowed")
    if nested and (above is None or _indent(line) <= _indent(above)):
        return ("a value holds ': '; put it in quotes" if line.count(": ") > 1 else None)
    if not (nested or problem.startswith("expected <block end>")):
        return None
    where = f" (`{above.strip()}`, key at column {_key_column(above) + 1})" if above else ""
    return (f"line {mark.line + 1} is `{line.strip()}`, key at column {_key_column(line) + 1}: "
            f"check the indentation of this key against the one above{where}; keys of one "
            "mapping start in the same column, a nested one further right under a key that "
            "ends with ':'")


def _resolve_stage(st: Any, base_dir: Path | None, source: str) -> Any:
    """Files a stage names, found from the pipeline's folder: ONNX files (`onnx:`,
    `teacher: {onnx: ...}`) and the module of an `arch: python` model (found, not imported)."""
    if not isinstance(st, dict):
        return st
    from compress.models import python

    st = dict(st)
    for key, holder in (("onnx", st), ("onnx", st.get("teacher"))):
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and base_dir:
            p = Path(holder[key]).expanduser()
            holder_new = {**holder, key: str(p if p.is_absolute() else (base_dir / p).resolve())}
            if holder is st:
                st = holder_new
            else:
                st["teacher"] = holder_new
    model = st.get("model")
    if isinstance(model, dict) and isinstance(model.get("weights"), str) and base_dir:
        w = Path(model["weights"]).expanduser()  # `weights:` of any family, like `onnx:`
        model = st["model"] = {**model, "weights": str(w if w.is_absolute()
                                                       else (base_dir / w).resolve())}
    if isinstance(model, dict) and model.get("arch") == "python":
        try:
            st["model"] = python.resolve(model, base_dir)
        except ValueError as e:
            where = f"stage '{st.get('id')}'" if st.get("id") else "stages"
            raise ConfigError(f"{source}: {where}, field 'model.factory': {e}") from e
    return st


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file; raises ConfigError with a one-line message."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: pipeline file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the pipeline file ({e})") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        pos = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        hint = yaml_hint(text, e)
        raise ConfigError(f"{path}: malformed YAML at {pos}: {e.problem}"
                          + (f"; {hint}" if hint else "")) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from e
    return parse_pipeline(raw, str(path), path.parent)
