"""Stage `search`: choose the student. Optuna samples a space over the student's fields, the
distillation recipe, the prune ratio and the int8 setting; each trial is measured where it
will run (val accuracy of the final pruned, quantized graph and its p50 in ONNX Runtime at the
given batch and threads), cheap checks first (compress.search.trial).

Consumes a teacher (and optional `reference` stages to mark); produces `model.pt`, the pick
(the fastest trial within the accuracy constraint) as a checkpoint for export/quantize/bench,
with front.json/.csv/.png, trials.csv, search.md and pick.yaml beside it. Trials, the study's
default journal and best.json live in `cache_dir`, which the runner keeps, so a killed search
resumes and a rerun is served from the trial cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from compress import artifacts
from compress.errors import ConfigError, GateError
from compress.search.space import SearchSpace
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.trainer.options import DistillOptions, TrainOptions

METRICS = ("val_accuracy_pct", "test_accuracy_pct", "p50_ms", "fp32_p50_ms", "size_bytes",
           "params", "int8_setting", "trials_finished", "trials_complete", "pareto_size",
           "floor_val_accuracy_pct", "teacher_val_accuracy_pct", "pick_trial", "study_name")


class SearchConfig(StageConfig, TrainOptions, DistillOptions):
    stage: Literal["search"] = "search"
    teacher: str = Field(description="id of the stage whose checkpoint (or ONNX model) teaches")
    space: SearchSpace = Field(description="what trials vary: model fields, temperature, alpha, "
                               "epochs, prune_ratio, int8")
    max_val_accuracy_drop_pts: float | None = Field(
        None, ge=0, le=100, description="constraint: val accuracy at most this far below the "
        "teacher's; default 1.0 when min_val_accuracy_pct is not set either")
    min_val_accuracy_pct: float | None = Field(
        None, ge=0, le=100, description="constraint: val accuracy at least this")
    trials: int = Field(20, ge=1, le=100_000, description="budget: finished trials of the study "
                        "(all workers), complete or stopped by the ladder")
    time_s: float | None = Field(None, gt=0, description="budget: seconds of this run; null = "
                                 "no limit")
    sampler: Literal["tpe", "nsga2", "random"] = Field(
        "tpe", description="multi-objective TPE, NSGA-II, or random (the baseline), seeded")
    storage: str | None = Field(
        None, description="Optuna storage: a URL (postgresql://..., sqlite:///...) or a journal "
        "file path shared by workers; null = a journal file in cache_dir")
    study_name: str | None = Field(
        None, description="study in the storage; null = derived from the space's hash")
    workers: int = Field(1, ge=1, le=256, description="worker processes on this machine")
    cache_dir: str | None = Field(
        None, description="trial folders, default journal, best.json; null = .cache/search/<id> "
        "beside the stage folder (kept by the runner)")
    reference: list[str] = Field(
        default_factory=list, description="earlier stages (checkpoint or ONNX) marked on the "
        "front: the teacher, a hand-tuned student")
    latency_batch_size: int = Field(1, ge=1, le=65_536, description="batch the p50 is timed at")
    threads: int = Field(1, ge=0, le=256, description="ORT intra-op threads (0 = all cores)")
    latency_time_s: float = Field(0.3, gt=0, le=60, description="seconds of timing per graph")
    calibration_samples: int = Field(256, ge=1, le=100_000, description="int8 calibration "
                                     "samples (train split)")
    max_params: int | None = Field(None, ge=1, description="ladder: skip students larger")
    max_macs: int | None = Field(None, ge=1, description="ladder: skip students costlier")
    max_latency_ms: float | None = Field(None, gt=0, description="ladder: skip students whose "
                                         "untrained graph is slower")
    short_fraction: float = Field(0.25, ge=0, lt=1, description="ladder: the short "
                                  "distillation's share of the epochs (0 = none)")
    rung_slack_pts: float = Field(5.0, ge=0, le=100, description="ladder: stop when the short "
                                  "run's val accuracy is this far below the lowest short-run "
                                  "accuracy that led to a feasible model")
    rung_margin_pts: float = Field(2.0, ge=0, le=100, description="ladder: stop when a trial at "
                                   "most as slow was this much better after its short run")
    prune_epochs: int = Field(4, ge=0, le=10_000, description="distillation fine-tuning epochs "
                              "after pruning")
    round_to: int = Field(8, ge=1, le=256, description="pruned channel counts: multiples of this")

    references = {"teacher": {"checkpoint", "onnx"}, "reference": {"checkpoint", "onnx"}}

    @model_validator(mode="after")
    def _one_constraint(self):
        if self.max_val_accuracy_drop_pts is not None and self.min_val_accuracy_pct is not None:
            raise ValueError("give one constraint: max_val_accuracy_drop_pts or "
                             "min_val_accuracy_pct, not both")
        return self

    def short_epochs_for(self, epochs: int) -> int:
        """Epochs of the short run; 0 when it would not be shorter than the full one."""
        short = round(epochs * self.short_fraction)
        return short if 0 < short < epochs else 0

    def recipe_payload(self) -> dict:
        keys = (*TrainOptions.model_fields, *DistillOptions.model_fields, "prune_epochs",
                "round_to", "calibration_samples")
        return {k: getattr(self, k) for k in keys if k not in ("epochs", "temperature", "alpha")
                } | {"distributed": None}

    def latency_payload(self) -> dict:
        return {"batch": self.latency_batch_size, "threads": self.threads}

    def ladder_payload(self) -> dict:
        return {k: getattr(self, k) for k in ("max_params", "max_macs", "max_latency_ms",
                                              "short_fraction", "rung_slack_pts",
                                              "rung_margin_pts")}


def _teacher_val(path: Path, kind: str, data) -> float:
    from compress.measure.ort import accuracy_pct, make_session, predict
    from compress.search.workers import load_teacher
    from compress.trainer.training import predict_logits

    if kind == "onnx":
        return accuracy_pct(predict(make_session(path, 0), data.x_val), data.y_val)
    import torch

    model = load_teacher(str(path), kind, data.input_shape)
    logits = predict_logits(model, data.x_val, torch.device("cpu")).numpy()
    return accuracy_pct(logits, data.y_val)


def _recipe_changes(cfg: SearchConfig) -> dict:
    """The training fields this search set away from their defaults (for pick.yaml)."""
    fields = [k for k in TrainOptions.model_fields
              if k not in ("epochs", "distributed", "patience")]
    changed = {k: getattr(cfg, k) for k in fields
               if getattr(cfg, k) != TrainOptions.model_fields[k].get_default()}
    return {**changed, "patience": None}  # trials train every epoch (the rung decides stops)


@contextlib.contextmanager
def _locked(folder: Path):
    """One search per cache folder at a time (the default journal has no other guard)."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise ConfigError(f"{folder}: another search is using this cache folder; wait for "
                              "it, or point this one at the same `storage` as a worker") from e
        yield
    finally:
        os.close(fd)


def metric_names(cfg: SearchConfig) -> tuple[str, ...]:
    return (*METRICS, "search_wall_time_s", *(f"speedup_vs_{r}" for r in cfg.reference))


@register_stage(SearchConfig, produces="checkpoint", metrics=metric_names)
def search(cfg: SearchConfig, ctx: StageContext) -> StageResult:
    from compress.models.python import code_trusted
    from compress.search.references import measure_references
    from compress.search.results import trial_rows, write_outputs, write_progress
    from compress.search.study import fail_stale, open_storage
    from compress.search.workers import open_study, run_workers

    where = f"stage '{ctx.stage_id}'"
    if cfg.space.model.get("arch") == "python" and not code_trusted():
        raise ConfigError(f"{where}, field 'space.model.arch': 'python' imports and runs "
                          f"{cfg.space.model.get('factory')}; rerun with --trust-code "
                          "(trust_code=True in the Python API) if you trust that code")
    if cfg.storage is not None:  # an unreachable storage fails before anything is written
        open_storage(cfg.storage, heartbeat=False)
    data = ctx.dataset()
    teacher = ctx.inputs[cfg.teacher]
    t_val = _teacher_val(teacher.path, teacher.kind, data)
    floor = (cfg.min_val_accuracy_pct if cfg.min_val_accuracy_pct is not None
             else t_val - (1.0 if cfg.max_val_accuracy_drop_pts is None
                           else cfg.max_val_accuracy_drop_pts))
    cache = (Path(cfg.cache_dir) if cfg.cache_dir
             else ctx.out_dir.parent / ".cache" / "search" / ctx.stage_id)
    cache.mkdir(parents=True, exist_ok=True)
    space_sha = cfg.space.sha256()
    context = {"teacher": teacher.sha256, "space": None}
    study_key = artifacts.sha256_json([space_sha, cfg.recipe_payload(), teacher.sha256, floor])
    name = cfg.study_name or f"search-{study_key[:16]}"
    job = {"cfg": cfg, "data": data, "data_cfg": ctx.data_cfg, "teacher_path": str(teacher.path),
           "teacher_kind": teacher.kind, "context": context, "cache_dir": str(cache),
           "floor_pct": floor, "progress": ctx.progress, "workers": cfg.workers,
           "trusted": code_trusted(),
           "storage": cfg.storage or str(cache / "study.journal"), "study_name": name,
           "space_sha256": space_sha, "where": where,
           "deadline": None if cfg.time_s is None else time.time() + cfg.time_s}
    t0 = time.perf_counter()
    # The default journal is this folder's alone; a named storage is shared by design.
    with _locked(cache) if cfg.storage is None else contextlib.nullcontext():
        study = open_study(job)
        if cfg.storage is None:
            fail_stale(study)  # trials a killed run left RUNNING: drawn again
        run_workers(job)
        write_progress(cache, study, floor)
        rows = trial_rows(study, floor)
    done = [r for r in rows if r["status"] == "complete"]
    best = min((r for r in done if r["val_accuracy_pct"] >= floor), default=None,
               key=lambda r: (r["p50_ms"], -r["val_accuracy_pct"]))
    pick_graph = cache / "trials" / best["hash"] / best["graph"] if best else None
    refs = {r: (ctx.inputs[r].kind, ctx.inputs[r].path) for r in cfg.reference}
    measured = measure_references(refs, pick_graph, data, cfg.latency_batch_size, cfg.threads,
                                  cfg.latency_time_s)
    meta = {"stage_id": ctx.stage_id, "study_name": name, "storage": job["storage"],
            "latency_batch_size": cfg.latency_batch_size, "threads": cfg.threads,
            "teacher_val_accuracy_pct": t_val, "search_wall_time_s":
            round(time.perf_counter() - t0, 3), "sampler": cfg.sampler}
    chosen = write_outputs(ctx.out_dir, rows, floor, measured, meta, cfg.teacher,
                           cfg.prune_epochs, _recipe_changes(cfg))
    if chosen is None:
        top = max(done, key=lambda r: r["val_accuracy_pct"], default=None)
        measured_txt = f"{top['val_accuracy_pct']:.2f} %" if top else "no complete trial"
        raise GateError(
            f"search '{ctx.stage_id}': no trial reached val accuracy {floor:.2f} % (best "
            f"{measured_txt}); the trials so far are in {cache} (best.json, trials.csv); relax "
            "the constraint, widen the space or raise `trials`",
            [{"gate": f"{ctx.stage_id}.val_accuracy_pct", "wanted": f">= {floor:.2f}",
              "measured": measured_txt, "passed": False}])
    trial_dir = cache / "trials" / chosen["hash"]
    shutil.copyfile(trial_dir / "model.pt", ctx.out_dir / "model.pt")
    shutil.copytree(trial_dir / "final", ctx.out_dir / "pick")
    artifacts.write_json(ctx.out_dir / "trial.json", artifacts.read_json(trial_dir /
                                                                       "trial.json"))
    metrics = {k: chosen.get(k) for k in METRICS if k in chosen}
    metrics.update(trials_finished=len(rows), trials_complete=len(done),
                   pareto_size=sum(r["pareto"] for r in rows), floor_val_accuracy_pct=floor,
                   teacher_val_accuracy_pct=t_val, pick_trial=chosen["number"],
                   study_name=name, search_wall_time_s=meta["search_wall_time_s"])
    for ref, m in measured.items():
        metrics[f"speedup_vs_{ref}"] = round(m["p50_ms"] / m["pick_p50_ms"], 4)
    return StageResult(primary="model.pt", metrics=metrics)
