"""Stage `explain`: does each compressed model still look at the teacher's evidence?

Consumes ONNX models (the first is the teacher's export; int8 included: what ships is what is
explained) and the teacher's checkpoint; produces `explain.json`, `explain.md`, a grid of maps
(`attribution_grid.png`) and a bar chart (`fidelity.png`). Occlusion runs in ONNX Runtime on a
seeded sample of the test split, for the teacher's predicted class; each model's maps are
compared with the teacher's (Spearman, top-k overlap, top-region agreement, bootstrap 95 % CIs)
and with two references that must score low: the teacher's architecture with cascading
randomized weights, and the teacher's maps for another class (Adebayo et al. 2018).
"""

from __future__ import annotations

import shutil
import time
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from compress import artifacts
from compress.errors import ConfigError, StageError
from compress.explain.fidelity import METRICS, Attribution, fidelity, k_for
from compress.explain.occlusion import Windows, occlude
from compress.measure import ort as ort_measure
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage

MODEL_METRICS = tuple(f"{m}{s}" for m in METRICS for s in ("", "_ci_low", "_ci_high")) + (
    "counts", "prediction_agreement")


class ExplainConfig(StageConfig):
    stage: Literal["explain"] = "explain"
    teacher: str = Field(description="id of the teacher's checkpoint stage: its architecture, "
                         "re-initialized from the top layer down, is the randomization reference")
    models: list[str] = Field(min_length=2, description="ids of stages that produced ONNX models; "
                              "the first is the teacher's export, the others are compared with it")
    samples: int = Field(200, ge=10, description="test samples explained (a seeded draw)")
    seed: int = Field(0, description="seeds the sample, the randomized weights, the other "
                      "classes and the bootstrap")
    window: int | None = Field(None, ge=1, description="occlusion window along each spatial axis "
                               "(pixels, steps or features); null = sized to the input: about "
                               "an eighth of each axis, 1 feature for tables")
    stride: int | None = Field(None, ge=1, description="window step; null = half the window")
    fill: float = Field(0.0, description="value written into the window, in normalised units "
                        "(0 = the training mean)")
    output: Literal["log_softmax", "logit"] = Field(
        "log_softmax", description="score whose drop is the attribution: the predicted class's "
        "log-probability (changes every class shares cancel) or its logit")
    randomized_levels: int | None = Field(
        3, ge=1, description="steps of the randomization cascade explained, spread from the "
        "output layer alone to every layer; null = every step")
    sanity_max_spearman: float = Field(
        0.5, gt=-1, le=1, description="the method passes the sanity check when both references "
        "(randomized teacher, other class) correlate with the teacher's maps below this (upper "
        "end of the 95 % CI); otherwise the stage fails")
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000, description="bootstrap resamples")
    gradient: Literal["none", "integrated_gradients", "input_x_gradient"] = Field(
        "none", description="also explain the PyTorch checkpoints (teacher and `checkpoints`) "
        "with this gradient method, for comparison with occlusion")
    gradient_steps: int = Field(16, ge=1, le=512, description="Integrated Gradients steps")
    checkpoints: list[str] = Field(default_factory=list, description="ids of checkpoint stages "
                                   "explained by `gradient` besides the teacher")
    grid_samples: int = Field(6, ge=1, le=16, description="samples shown in the grid picture")

    references = {"teacher": {"checkpoint"}, "models": {"onnx"}, "checkpoints": {"checkpoint"}}

    @field_validator("models", "checkpoints")
    @classmethod
    def _unique(cls, v: list[str]):
        if len(set(v)) != len(v):
            raise ValueError("a model is listed twice")
        return v


def metric_names(cfg: ExplainConfig) -> list[str]:
    names = [f"{m}.{k}" for m in cfg.models[1:] for k in MODEL_METRICS]
    names += ["reference.randomized_spearman", "reference.other_class_spearman"]
    if cfg.gradient != "none":
        names += ["gradient.teacher_vs_occlusion_spearman"]
        names += [f"gradient.{c}.spearman" for c in cfg.checkpoints]
    return names


def _sample(cfg: ExplainConfig, ctx: StageContext, data) -> np.ndarray:
    n = len(data.x_test)
    if cfg.samples > n:
        raise ConfigError(f"stage '{ctx.stage_id}', field 'samples': {cfg.samples} is more than "
                          f"the {n} samples of the test split; use at most {n}")
    rng = np.random.default_rng(cfg.seed)
    return np.sort(rng.choice(n, size=cfg.samples, replace=False))


def _sessions(cfg: ExplainConfig, ctx: StageContext, data) -> dict:
    """One ORT session per model, each checked to take the teacher's (and the data's) input."""
    sessions, teacher_input = {}, None
    for mid in cfg.models:
        path = ctx.inputs[mid].path
        s = ort_measure.make_session(path, threads=0)
        declared = list(s.get_inputs()[0].shape[1:])
        if teacher_input is None:
            teacher_input = declared
        elif declared != teacher_input:
            raise ConfigError(f"stage '{ctx.stage_id}', field 'models': '{mid}' takes inputs "
                              f"{['N', *declared]} but the teacher '{cfg.models[0]}' takes "
                              f"{['N', *teacher_input]}; explain models of the same input only")
        ort_measure.check_input_shape(s, data.input_shape, path)
        sessions[mid] = s
    return sessions


def _attribution(occ, target, windows) -> Attribution:
    return Attribution(maps=occ.maps(target, windows), top=occ.top_window(target))


def _randomized(cfg: ExplainConfig, ctx: StageContext, x: np.ndarray, windows: Windows,
                target: np.ndarray) -> list[tuple[object, Attribution]]:
    """(cascade step, its occlusion maps) for every randomized copy of the teacher."""
    import torch

    from compress.explain.randomize import cascade, export_randomized
    from compress.models.checkpoint import model_from_checkpoint

    art = ctx.inputs[cfg.teacher]
    source = ort_measure.read_metadata(ctx.inputs[cfg.models[0]].path).get("compress.source")
    if isinstance(source, dict) and source.get("checkpoint_sha256") not in (None, art.sha256):
        raise ConfigError(f"stage '{ctx.stage_id}', field 'models': the first model "
                          f"'{cfg.models[0]}' was not exported from the teacher checkpoint "
                          f"'{cfg.teacher}' (its metadata names another); list the teacher's "
                          "export first")
    ckpt = artifacts.load_checkpoint(art.path)
    steps = cascade(ckpt, model_from_checkpoint(ckpt, art.path), cfg.seed, cfg.randomized_levels)
    scratch = ctx.out_dir / ".randomized"  # tens of MB for a large teacher: not kept
    try:
        paths = export_randomized(steps, torch.from_numpy(x[:2]), scratch)
        return [(step, _attribution(occlude(ort_measure.make_session(p, threads=0), x,
                                            windows, cfg.fill, cfg.output), target, windows))
                for step, p in zip(steps, paths, strict=True)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _other_class(logits: np.ndarray, target: np.ndarray, seed: int) -> np.ndarray:
    """A random class other than the target, per sample (seeded)."""
    k = logits.shape[1]
    shift = np.random.default_rng(seed + 1).integers(1, k, size=len(target))
    return (target + shift) % k


def _gradients(cfg: ExplainConfig, ctx: StageContext, x: np.ndarray, target: np.ndarray,
               teacher_maps: np.ndarray) -> dict:
    """Gradient maps of the checkpoints: agreement with occlusion (teacher) and fidelity of
    each checkpoint against the teacher's gradient maps."""
    from compress.explain.fidelity import bootstrap_ci, spearman_rows
    from compress.explain.gradients import gradient_maps
    from compress.models.checkpoint import model_from_checkpoint

    def maps(sid: str) -> np.ndarray:
        art = ctx.inputs[sid]
        model = model_from_checkpoint(artifacts.load_checkpoint(art.path), art.path)
        return gradient_maps(model, x, target, cfg.gradient, cfg.gradient_steps, cfg.fill)

    def summary(values: np.ndarray) -> dict:
        lo, hi = bootstrap_ci(values, cfg.bootstrap_resamples, cfg.seed)
        return {"mean": float(values.mean()), "ci_low": lo, "ci_high": hi}

    teacher = maps(cfg.teacher)
    return {
        "method": cfg.gradient,
        "teacher_vs_occlusion_spearman": summary(spearman_rows(teacher, teacher_maps)),
        "checkpoints": {c: summary(spearman_rows(teacher, maps(c))) for c in cfg.checkpoints},
    }


def _sanity(refs: dict, limit: float, stage_id: str) -> dict:
    worst = max(refs.values(), key=lambda r: r["spearman"]["ci_high"])
    passed = all(r["spearman"]["ci_high"] < limit for r in refs.values())
    if not passed:
        raise StageError(
            f"stage '{stage_id}': the attribution method fails the sanity check on the teacher "
            f"itself: {worst['label']} correlates {worst['spearman']['mean']:.2f} (95 % CI up to "
            f"{worst['spearman']['ci_high']:.2f}) with the teacher's maps, not below "
            f"sanity_max_spearman {limit:g}, so similar maps would mean nothing; change window, "
            "stride or fill")
    return {"passed": True, "max_spearman": limit,
            "highest_reference": worst["label"]}


def _reference_record(label: str, fid: dict) -> dict:
    return {"label": label, **{m: fid[m] for m in METRICS}}


@register_stage(ExplainConfig, produces="explain", metrics=metric_names)
def explain(cfg: ExplainConfig, ctx: StageContext) -> StageResult:
    from compress.report.explain import explain_markdown, plot_fidelity, plot_grid

    start = time.perf_counter()
    data = ctx.dataset()
    windows = Windows.for_input(data.input_shape, cfg.window, cfg.stride,
                                f"stage '{ctx.stage_id}'")
    idx = _sample(cfg, ctx, data)
    x = np.ascontiguousarray(data.x_test[idx])
    sessions = _sessions(cfg, ctx, data)

    def run(fid_of):
        return fidelity(teacher, fid_of, windows.overlap, cfg.bootstrap_resamples, cfg.seed)

    occ = {m: occlude(s, x, windows, cfg.fill, cfg.output) for m, s in sessions.items()}
    target = occ[cfg.models[0]].logits.argmax(axis=1)
    attr = {m: _attribution(o, target, windows) for m, o in occ.items()}
    teacher = attr[cfg.models[0]]

    other = _other_class(occ[cfg.models[0]].logits, target, cfg.seed)
    refs = {"other_class": _reference_record(
        "teacher's maps for a random other class",
        run(_attribution(occ[cfg.models[0]], other, windows)))}
    cascade = [(step, run(a), a) for step, a in _randomized(cfg, ctx, x, windows, target)]
    top_step, top_fid, _ = max(cascade, key=lambda c: c[1]["spearman"]["mean"])
    refs["randomized"] = {**_reference_record(f"teacher, {top_step.label}", top_fid),
                          "cascade": [{"level": s.level, "groups": s.groups,
                                       **{m: f[m] for m in METRICS}} for s, f, _ in cascade]}
    sanity = _sanity(refs, cfg.sanity_max_spearman, ctx.stage_id)
    bar = max(r["spearman"]["ci_high"] for r in refs.values())

    models, per_sample = {}, {}
    for m in cfg.models:
        fid = run(attr[m])
        per_sample[m] = fid.pop("per_sample")
        models[m] = {**fid, "role": "teacher" if m == cfg.models[0] else "model",
                     "counts": bool(fid["spearman"]["ci_low"] > bar),
                     "prediction_agreement": float((occ[m].logits.argmax(1) == target).mean()),
                     "path": str(ctx.inputs[m].path), "sha256": ctx.inputs[m].sha256}
    gradients = (_gradients(cfg, ctx, x, target, teacher.maps)
                 if cfg.gradient != "none" else None)

    result = {
        "teacher": cfg.models[0], "teacher_checkpoint": cfg.teacher, "models": models,
        "references": refs, "sanity_check": sanity, "reference_spearman_bar": bar,
        "gradients": gradients,
        "sample": {"size": len(idx), "seed": cfg.seed, "test_split_size": len(data.x_test),
                   "input_shape": data.input_shape, "features": windows.features,
                   "top_k": k_for(windows.features)},
        "method": _method(cfg, windows),
        "wall_time_s": time.perf_counter() - start,
    }
    artifacts.write_json(ctx.out_dir / "explain.json", result)
    artifacts.write_text(ctx.out_dir / "explain.md", explain_markdown(result) + "\n")
    plot_fidelity(result, ctx.out_dir / "fidelity.png")
    shown = {m: attr[m].maps for m in cfg.models}
    label = f"randomized (all {cascade[-1][0].level} groups)"
    shown[label], per_sample[label] = cascade[-1][2].maps, cascade[-1][1]["per_sample"]
    plot_grid(x, target, data.class_labels, shown, per_sample, windows.spatial,
              cfg.grid_samples, ctx.out_dir / "attribution_grid.png")
    return StageResult(primary="explain.json", metrics=flatten_explain(result))


def _method(cfg: ExplainConfig, windows: Windows) -> str:
    score = "log-probability" if cfg.output == "log_softmax" else "logit"
    return (f"{windows.describe()}, filled with {cfg.fill:g} (normalised units), run in ONNX "
            f"Runtime (CPU) for every model; attribution of a feature = mean drop of the "
            f"{score} of the teacher's predicted class over the windows covering it; metrics "
            "per sample against the teacher's map, mean with a percentile-bootstrap 95 % CI "
            f"({cfg.bootstrap_resamples} resamples, seed {cfg.seed}); a model's fidelity counts "
            "when the lower end of its Spearman CI is above the upper end of both references'")


def flatten_explain(result: dict) -> dict:
    """`<model>.spearman`, `<model>.spearman_ci_low`, ...: names gates can refer to."""
    out: dict = {}
    for m, rec in result["models"].items():
        if rec["role"] == "teacher":
            continue
        for k in METRICS:
            out[f"{m}.{k}"] = rec[k]["mean"]
            out[f"{m}.{k}_ci_low"] = rec[k]["ci_low"]
            out[f"{m}.{k}_ci_high"] = rec[k]["ci_high"]
        out[f"{m}.counts"] = int(rec["counts"])
        out[f"{m}.prediction_agreement"] = rec["prediction_agreement"]
    for name, ref in result["references"].items():
        out[f"reference.{name}_spearman"] = ref["spearman"]["mean"]
    g = result.get("gradients")
    if g:
        out["gradient.teacher_vs_occlusion_spearman"] = g["teacher_vs_occlusion_spearman"]["mean"]
        for c, s in g["checkpoints"].items():
            out[f"gradient.{c}.spearman"] = s["mean"]
    return out
