"""One trial of the search, as a ladder from cheap to expensive, every rung able to stop it:

1. build the student: params and MACs against `max_params` / `max_macs`;
2. its untrained graph, pruned to the trial's ratio, exported, quantized and timed in ORT at the
   user's batch and threads (`int8: auto` keeps the fastest of fp32, QDQ and QOperator): the
   latency objective is known before any training, and `max_latency_ms` stops it here;
3. a short distillation (`short_epochs`) and the rung rule (stop when the rung's val accuracy
   is below the constraint by more than `rung_slack_pts`, or when an earlier trial at most as
   slow reached a rung accuracy `rung_margin_pts` higher: this one would be dominated);
4. for the survivors, the full distillation, structured pruning with distillation fine-tuning,
   export, int8, and the objectives: ORT val accuracy of the final model and its p50 latency.

Each trial's folder is `<cache>/trials/<sha256 of its config>/` (trial.json, model.pt, the fp32
and int8 graphs), written to a temporary folder and renamed: a trial is either all there or
absent, and a configuration seen before is read back instead of trained again.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from compress import artifacts
from compress.models import build_model, count_params, parse_model_spec
from compress.trainer.options import DistillOptions, TrainOptions

TRIAL_JSON = "trial.json"


class Recipe(TrainOptions, DistillOptions):
    """The training fields of one trial (the stage's, with the trial's epochs, temperature and
    alpha), plus what the pruning engine reads."""

    ratio: float = Field(0.0, description="structured prune ratio")
    steps: int = Field(1, description="one prune step, then fine-tuning")
    importance: str = Field("l2", description="channel ranking")
    global_pruning: bool = Field(False, description="same ratio per layer")
    max_layer_ratio: float = Field(0.9, description="unused without global pruning")
    round_to: int = Field(8, description="channel counts kept at a multiple of this")
    head_ratio: float | None = Field(None, description="transformer heads: ratio")


def code_fingerprint() -> str:
    """The engines a trial runs (and library versions): other code, other trials."""
    from compress.measure.system import versions

    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parent.parent
    for folder in ("search", "trainer", "onnx", "models", "measure"):
        for p in sorted((pkg / folder).rglob("*.py")):
            h.update(p.relative_to(pkg).as_posix().encode() + b"\0" + p.read_bytes())
    h.update(artifacts.canonical_json(versions()).encode())
    return h.hexdigest()


def data_fingerprint(data) -> str:
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_val, data.y_val):
        h.update(memoryview(a.__array__().copy(order="C")).cast("B"))
    return h.hexdigest()


class TrialRunner:
    """Runs trials for one search; `__call__(optuna_trial)` gives (val accuracy, p50 ms)."""

    def __init__(self, cfg, data, data_cfg, teacher, context: dict, cache_dir: Path,
                 floor_pct: float, progress: bool = True):
        self.cfg, self.data, self.data_cfg, self.teacher = cfg, data, data_cfg, teacher
        self.cache, self.floor, self.progress = Path(cache_dir), floor_pct, progress
        # What every trial's hash covers besides its own config.
        self.context = {**context, "data": data_fingerprint(data), "code": code_fingerprint(),
                        "recipe": cfg.recipe_payload(), "latency": cfg.latency_payload()}
        self.rule = {"floor_pct": floor_pct, **cfg.ladder_payload()}
        (self.cache / "trials").mkdir(parents=True, exist_ok=True)

    def trial_hash(self, params: dict) -> str:
        return artifacts.sha256_json({"params": params, **self.context})

    def defaults(self) -> dict:
        c = self.cfg
        return {"temperature": c.temperature, "alpha": c.alpha, "epochs": c.epochs}

    def __call__(self, trial) -> tuple[float, float]:
        import optuna

        params = self.cfg.space.sample(trial, self.defaults())
        h = self.trial_hash(params)
        trial.set_user_attr("hash", h)
        trial.set_user_attr("config", params)
        trial.set_user_attr("pid", os.getpid())
        record = self._cached(h)
        if record is None:
            t0 = time.perf_counter()
            record = self.run(params, h, trial)
            record["wall_time_s"] = round(time.perf_counter() - t0, 3)
            self._save(h, record)
            record["cached"] = False
        else:
            record["cached"] = True
        for key in ("status", "stopped_at", "params", "macs", "size_bytes", "p50_ms",
                    "untrained_p50_ms", "short_val_accuracy_pct", "val_accuracy_pct",
                    "test_accuracy_pct", "int8_setting", "fp32_p50_ms", "wall_time_s",
                    "short_epochs", "graph",
                    "cached", "reason"):
            if key in record:
                trial.set_user_attr(key, record[key])
        self._say(trial.number, record)
        if record["status"] != "complete":
            raise optuna.TrialPruned(record.get("reason", record["stopped_at"]))
        # <= 0 is feasible: the samplers favour trials inside the accuracy constraint
        trial.set_constraint("val_accuracy", self.floor - record["val_accuracy_pct"])
        return record["val_accuracy_pct"], record["p50_ms"]

    # --- the trial cache ---------------------------------------------------------------

    def folder(self, h: str) -> Path:
        return self.cache / "trials" / h

    def _cached(self, h: str) -> dict | None:
        path = self.folder(h) / TRIAL_JSON
        if not path.is_file():
            return None
        record = artifacts.read_json(path)
        # A stop by the rung rule depends on the constraint and the rule: only the same holds.
        if record["status"] != "complete" and record.get("rule") != self.rule:
            return None
        return record

    def _save(self, h: str, record: dict) -> None:
        work = self._work(h)
        artifacts.write_json(work / TRIAL_JSON, {**record, "hash": h, "rule": self.rule})
        final = self.folder(h)
        if final.exists():  # an earlier stop of this config under another rule, or a worker
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(work, final)
        except OSError:  # another worker renamed the same trial into place meanwhile
            shutil.rmtree(work, ignore_errors=True)

    def _work(self, h: str) -> Path:
        work = self.cache / "trials" / f".tmp-{h[:16]}-{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        return work

    def _say(self, number: int, r: dict) -> None:
        if not self.progress:
            return
        what = (f"val {r['val_accuracy_pct']:.2f} %, p50 {r['p50_ms']:.4f} ms"
                if r["status"] == "complete" else f"stopped at {r['stopped_at']}")
        print(f"search: trial {number}: {what}{' (cached)' if r.get('cached') else ''}",
              file=sys.stderr, flush=True)

    # --- the ladder -----------------------------------------------------------------------

    def run(self, params: dict, h: str, trial) -> dict:
        import torch

        from compress.errors import CompressError
        from compress.trainer.pruning import count_macs
        from compress.trainer.training import seed_everything

        cfg, data = self.cfg, self.data
        work = self._work(h)
        record: dict[str, Any] = {"config": params, "status": "stopped"}
        try:
            spec = parse_model_spec(params["model"])
            seed_everything(cfg.seed)
            model = build_model(spec, data.input_shape, data.num_classes)
        except (CompressError, ValueError) as e:
            return {**record, "stopped_at": "invalid", "reason": str(e).splitlines()[0][:300]}
        example = torch.as_tensor(data.x_train[:2])
        record["params"], record["macs"] = count_params(model), count_macs(model, example)
        for what, limit in (("params", cfg.max_params), ("macs", cfg.max_macs)):
            if limit is not None and record[what] > limit:
                return {**record, "stopped_at": what,
                        "reason": f"{what} {record[what]:,} > {limit:,}"}

        # 2. the untrained graph at its final channel counts: latency before training
        probe = copy.deepcopy(model)
        if params["prune_ratio"] > 0:
            self._prune(probe, params, finetune=False)
        timed, _ = self._graphs(probe, work / "untrained", params["int8"])
        setting = min(timed, key=timed.get) if params["int8"] == "auto" else params["int8"]
        record.update(untrained_p50_ms=timed[setting], int8_setting=setting)
        if cfg.max_latency_ms is not None and timed[setting] > cfg.max_latency_ms:
            return {**record, "stopped_at": "latency",
                    "reason": f"untrained p50 {timed[setting]:.4f} ms > {cfg.max_latency_ms}"}

        # 3. a short distillation, and the rung rule
        short = cfg.short_epochs_for(params["epochs"])
        if short:
            rung = self._distill(copy.deepcopy(model), params, short)
            record.update(short_val_accuracy_pct=rung, short_epochs=short)
            trial.set_user_attr("untrained_p50_ms", timed[setting])
            trial.set_user_attr("short_val_accuracy_pct", rung)
            trial.set_user_attr("short_epochs", short)
            reason = self._rung_stop(trial, rung, timed[setting], short)
            if reason:
                return {**record, "stopped_at": "rung", "reason": reason}

        # 4. full training, pruning, the final graphs and the objectives
        self._distill(model, params, params["epochs"])
        if params["prune_ratio"] > 0:
            spec = self._prune(model, params, finetune=True, spec=spec)
        model.cpu().eval()
        timed, paths = self._graphs(model, work / "final", setting)
        record.update(self._final_metrics(work / "final", setting, timed, paths[setting]))
        record.update(status="complete", stopped_at=None, spec=spec.model_dump(mode="json"),
                      params=count_params(model))
        self._checkpoint(model, spec, params, record, work / "model.pt")
        return record

    def _recipe(self, params: dict, epochs: int, ratio: float = 0.0) -> Recipe:
        base = {k: getattr(self.cfg, k) for k in Recipe.model_fields if hasattr(self.cfg, k)}
        return Recipe(**{**base, "epochs": epochs, "temperature": params["temperature"],
                         "alpha": params["alpha"], "ratio": ratio,
                         "round_to": self.cfg.round_to, "patience": None})

    def _distill(self, model, params: dict, epochs: int) -> float:
        import torch

        from compress.trainer.distillation import Distiller
        from compress.trainer.training import fit

        recipe = self._recipe(params, epochs)
        distiller = Distiller(model, self.teacher, torch.as_tensor(self.data.x_train[:2]),
                              recipe, label_smoothing=recipe.label_smoothing)
        result = fit(distiller, self.data, recipe, loss_fn=distiller.loss, progress=False,
                     desc="search")
        model.cpu()
        return result.best_val_accuracy_pct

    def _prune(self, model, params: dict, finetune: bool, spec=None):
        import torch

        from compress.trainer.pruning import (
            Finetuner,
            classifier_of,
            spec_after_pruning,
            structured,
        )
        from compress.trainer.training import resolve_device

        epochs = self.cfg.prune_epochs if finetune else 0
        recipe = self._recipe(params, max(1, epochs), ratio=params["prune_ratio"])
        model.cpu()
        example = torch.as_tensor(self.data.x_train[:2])
        tune = (Finetuner(recipe, self.data, self.teacher, False, "search") if epochs
                else lambda m, step: None)
        structured(model, classifier_of(model, self.data.num_classes), example, recipe,
                   self.data, tune, resolve_device(recipe.device), lambda *a: None)
        model.cpu().eval()
        if spec is None:
            return None
        return spec_after_pruning(model, spec, self.data.input_shape, self.data.num_classes)

    def _graphs(self, model, prefix: Path, int8: str) -> tuple[dict[str, float], dict[str, Path]]:
        """Export `model` (fp32), quantize it as `int8` asks, time each graph interleaved with
        the fp32 one; ({setting: p50 ms}, {setting: path}), setting "off" being fp32."""
        import torch

        from compress.onnx.quantization import (
            CalibrationConfig,
            Quantizer,
            Setting,
            calibration_sample,
            preprocess,
        )
        from compress.onnx.quick import quick_export

        prefix.mkdir(parents=True, exist_ok=True)
        fp32 = prefix / "fp32.onnx"
        quick_export(model.cpu().eval(), torch.as_tensor(self.data.x_test[:2]), fp32)
        paths = {"off": fp32}
        wanted = {"auto": ["qdq", "qoperator"], "off": []}.get(int8, [int8])
        if wanted:
            pre = prefix / "pre.onnx"
            preprocess(fp32, pre)
            calib = CalibrationConfig(samples=self.cfg.calibration_samples)
            q = Quantizer(pre, prefix, calib, calibration_sample(self.data.x_train, calib),
                          "input")
            for fmt in wanted:
                paths[fmt] = q.quantize(Setting("static", "uint8", fmt), prefix / f"{fmt}.onnx")
        return self._time(paths), paths

    def _time(self, paths: dict[str, Path]) -> dict[str, float]:
        from compress.measure.latency import measure_interleaved
        from compress.measure.ort import batch_of, make_session

        sessions = {n: make_session(p, self.cfg.threads) for n, p in paths.items()}
        x = batch_of(self.data.x_val, self.cfg.latency_batch_size)
        feeds = {n: {"input": x} for n in sessions}
        t = self.cfg.latency_time_s
        stats = measure_interleaved(sessions, feeds, warmup_runs=10, min_runs=30, min_time_s=t,
                                    max_time_s=10 * t)
        return {n: round(s.p50_ms, 5) for n, s in stats.items()}

    def _final_metrics(self, prefix: Path, setting: str, timed: dict, path: Path) -> dict:
        from compress.measure.ort import accuracy_pct, make_session, predict
        from compress.onnx.external import model_size_bytes

        s = make_session(path, 0)
        keep = path.name
        for p in prefix.iterdir():  # the graphs a later stage or a user might want, no more
            if p.name not in (keep, "fp32.onnx"):
                p.unlink()
        return {
            "val_accuracy_pct": accuracy_pct(predict(s, self.data.x_val), self.data.y_val),
            "test_accuracy_pct": accuracy_pct(predict(s, self.data.x_test), self.data.y_test),
            "p50_ms": timed[setting],
            "fp32_p50_ms": timed["off"],
            "size_bytes": model_size_bytes(path),
            "graph": f"final/{keep}",
        }

    def _checkpoint(self, model, spec, params: dict, record: dict, path: Path) -> None:
        from compress.models.checkpoint import checkpoint_payload

        recipe = self._recipe(params, params["epochs"], params["prune_ratio"])
        metrics = {k: record[k] for k in ("val_accuracy_pct", "test_accuracy_pct", "p50_ms",
                                          "size_bytes", "params", "int8_setting")}
        artifacts.save_checkpoint(path, checkpoint_payload(model, spec, self.data, self.data_cfg,
                                                           recipe, metrics))

    def _rung_stop(self, trial, rung_pct: float, latency_ms: float, short: int) -> str | None:
        """Why the trial stops after its short distillation; None to train it fully. Short-run
        accuracies are compared only between trials with the same number of short epochs."""
        from optuna.trial import TrialState

        cfg = self.cfg
        others = [o for o in trial.study.get_trials(deepcopy=False, states=(
            TrialState.COMPLETE, TrialState.PRUNED)) if o.user_attrs.get("short_epochs") == short]
        # (a) below every short-run accuracy that went on to meet the constraint, by the slack
        led = [o.user_attrs["short_val_accuracy_pct"] for o in others
               if o.state == TrialState.COMPLETE and o.values[0] >= self.floor]
        if led and rung_pct < min(led) - cfg.rung_slack_pts:
            return (f"rung val {rung_pct:.2f} % < {min(led):.2f} % (the lowest short-run "
                    f"accuracy that led to a feasible model) - {cfg.rung_slack_pts} pts")
        # (b) dominated at the rung: an earlier trial at most as slow was clearly better
        for o in others:
            a = o.user_attrs
            if (a.get("untrained_p50_ms", math.inf) <= latency_ms
                    and a["short_val_accuracy_pct"] >= rung_pct + cfg.rung_margin_pts):
                return (f"dominated at the rung by trial {o.number} (p50 "
                        f"{a['untrained_p50_ms']:.4f} <= {latency_ms:.4f} ms, rung val "
                        f"{a['short_val_accuracy_pct']:.2f} % vs {rung_pct:.2f} %)")
        return None
