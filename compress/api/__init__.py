"""The public Python API: `compress.train`, `distill`, `prune`, `export`, `quantize`, `bench`,
`run`. Modules in, typed results out; options are keyword arguments validated by the same
config classes as the YAML steps (same defaults, same one-line errors), and each function runs
the same code as its stage: a stage is this call plus reading its inputs and writing its folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.api.inputs import DataLike, _config, _dataset, _module, _teacher
from compress.errors import ConfigError
from compress.results import ArtifactResult, BenchResult, ModelResult, RunResult

if TYPE_CHECKING:
    from torch import nn

    from compress.data import Dataset

def train(model: nn.Module | dict, data: DataLike, *, trust_code: bool = False,
          progress: bool = True, **options: Any) -> ModelResult:
    """Train `model` on `data`, keeping the weights of the best validation epoch.

    Args:
        model: an `nn.Module` whose forward gives (batch, classes) logits, or a model spec
            such as `{"arch": "resnet", "width": 32}` or `{"arch": "python", "factory":
            "my_models:build", "kwargs": {...}}` (needs `trust_code=True`).
        data: `compress.data.from_arrays(...)`, or a data spec such as `"digits"`.
        trust_code: allow `arch: python` specs (importing the module runs it).
        progress: show progress, as the command line does (on by default): a bar on a
            terminal, else a line on stderr every 10 s; False for none.
        **options: any field of the `train` stage (`epochs`, `lr`, `batch_size`, `optimizer`,
            `schedule`, `augment_shift`, `seed`, `device`, ...), validated as in YAML.

    Returns:
        ModelResult: the trained model (on the CPU), metrics (`test_accuracy_pct`, ...) and
        the per-epoch history.

    Raises:
        compress.errors.ConfigError: a bad option or model (one line).

    Example:
        >>> import compress, torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        >>> r = compress.train(net, "digits", epochs=2)
        >>> r.metrics["test_accuracy_pct"] > 50
        True
    """
    from compress.stages.train import TrainConfig, train_model

    cfg = _config(TrainConfig, "train", {"id": "train", **options})
    ds = _dataset(data)
    net = _module(model, ds, "train", trust_code)
    metrics, history = train_model(net, ds, cfg, progress, "train")
    return ModelResult(net, metrics, history)


def distill(teacher: nn.Module | str | Path, student: nn.Module | dict, data: DataLike, *,
            trust_code: bool = False, progress: bool = True, **options: Any) -> ModelResult:
    """Train `student` from `teacher` (Hinton distillation), and a copy of the student's initial
    weights on labels alone, so that the gain is measured.

    Args:
        teacher: an `nn.Module`, a compress checkpoint (`model.pt`'s path, or the dict
            `torch.load` gives: it names its model), or the path of an ONNX model (run in ONNX
            Runtime on the same augmented batches the student sees). A bare state dict is
            refused: load it into its module first (`model.load_state_dict(...)`).
        student: an `nn.Module` or a model spec (see `train`).
        data: as in `train`.
        trust_code: as in `train`.
        progress: show progress, as the command line does (on by default): a bar on a
            terminal, else a line on stderr every 10 s; False for none.
        **options: any field of the `distill` stage (`temperature`, `alpha`, `epochs`, `lr`,
            `compare_without_teacher`, `hint`, ...).

    Returns:
        ModelResult: the student; metrics include `test_accuracy_pct`,
        `without_teacher_test_accuracy_pct`, `distillation_gain_pts`, `teacher_runtime`.

    Raises:
        compress.errors.ConfigError: a bad option, model, or ONNX teacher (one line).

    Example:
        >>> import compress, torch
        >>> big = compress.train({"arch": "resnet", "width": 16}, "digits", epochs=2).model
        >>> small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        >>> r = compress.distill(big, small, "digits", epochs=2, temperature=4)
        >>> "distillation_gain_pts" in r.metrics
        True
    """
    from torch import nn

    from compress.onnx.foreign import check_foreign_onnx
    from compress.stages.distill import DistillConfig, distill_model
    from compress.trainer.ort_teacher import OrtTeacher

    teacher = _teacher(teacher, "distill")
    onnx_teacher = not isinstance(teacher, nn.Module)
    ref = {"onnx": str(teacher)} if onnx_teacher else "teacher"
    cfg = _config(DistillConfig, "distill", {"id": "distill", "teacher": ref, **options})
    ds = _dataset(data)
    if onnx_teacher:
        try:
            check_foreign_onnx(teacher, ds, "teacher")
        except ConfigError as e:
            raise ConfigError(f"compress.distill: argument {e}") from e
        teacher = OrtTeacher(teacher)
    net = _module(student, ds, "distill", trust_code)
    metrics, history = distill_model(net, teacher, ds, cfg, progress, "distill")
    return ModelResult(net, metrics, history)


def prune(model: nn.Module, data: DataLike, *, teacher: nn.Module | None = None,
          progress: bool = True, **options: Any) -> ModelResult:
    """Remove channels for real (structured, torch-pruning's dependency graph: residual adds,
    depthwise convolutions and batch norms stay consistent), fine-tuning after each step.

    The layer whose outputs are the classes is kept whole. The model is pruned in place.

    Args:
        model: the `nn.Module` to prune.
        data: as in `train`.
        teacher: a module that fine-tuning distills from; None = labels only.
        progress: show progress, as the command line does (on by default): a bar on a
            terminal, else a line on stderr every 10 s; False for none.
        **options: any field of the `prune` stage (`ratio`, `steps`, `epochs`, `importance`,
            `method`, `round_to`, `global_pruning`, ...).

    Returns:
        ModelResult: the pruned model; metrics include `params`, `params_before`, `macs`,
        `test_accuracy_pct` and `accuracy_change_pts`; history lists every step.

    Raises:
        compress.errors.ConfigError: a bad option (one line).
        compress.errors.StageError: no layer outputs the classes.

    Example:
        >>> import compress
        >>> net = compress.train({"arch": "resnet", "width": 16}, "digits", epochs=2).model
        >>> r = compress.prune(net, "digits", ratio=0.5, steps=1, epochs=1)
        >>> r.metrics["params"] < r.metrics["params_before"]
        True
    """
    from compress.stages.prune import PruneConfig, prune_model

    cfg = _config(PruneConfig, "prune", {"id": "prune", "input": "input",
                                         "teacher": "teacher" if teacher is not None else None,
                                         **options})
    ds = _dataset(data)
    if teacher is not None:
        teacher = _teacher(teacher, "prune")
    metrics, report = prune_model(model, ds, cfg, teacher, progress, "prune")
    return ModelResult(model, metrics, report)


def export(model: nn.Module, path: str | Path, data: DataLike, **options: Any) -> ArtifactResult:
    """Export `model` to ONNX (dynamic batch axis), checked by onnx.checker, outputs compared
    with PyTorch's (ParityError beyond the tolerance), accuracy measured in ONNX Runtime, and
    the contract (input, preprocessing, class labels, metrics) in its metadata.

    Args:
        model: the `nn.Module` to export.
        path: the `.onnx` file to write (replaced atomically).
        data: as in `train` (test inputs for parity and accuracy; preprocessing recorded).
        **options: any field of the `export` stage (`opset`, `atol`, `rtol`,
            `parity_samples`).

    Returns:
        ArtifactResult: the file and its metrics (`ort_test_accuracy_pct`,
        `parity_max_abs_diff`, `size_bytes`, ...).

    Raises:
        compress.errors.ConfigError: a bad option. compress.errors.ParityError: ORT and
        PyTorch disagree. compress.errors.StageError: the exporter failed.

    Example:
        >>> import compress
        >>> net = compress.train({"arch": "mlp", "hidden": [32]}, "digits", epochs=1).model
        >>> compress.export(net, "/tmp/mlp.onnx", "digits").metrics["parity_max_abs_diff"] < 1e-4
        True
    """
    import os
    import tempfile

    from compress import artifacts
    from compress.stages.export import ExportConfig, export_model

    cfg = _config(ExportConfig, "export", {"id": "export", "input": "model", **options})
    ds = _dataset(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    described = {
        "preprocessing": ds.preprocessing(), "class_labels": ds.class_labels,
        "data": ds.spec.model_dump(mode="json") if ds.spec is not None else None,
        "model": {"arch": "python", "class": f"{type(model).__module__}."
                  f"{type(model).__qualname__}", "given_as": "nn.Module (Python API)"},
    }
    # Exported in a private folder (the exporter writes its side files beside the model); only
    # the model moves into place, through the same atomic write as every artifact.
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        staged = Path(tmp) / "model.onnx"
        metrics = export_model(model, ds, cfg, staged, described,
                               {"pipeline": "", "stage": "compress.export (Python API)"})
        with artifacts.atomic_path(path) as final:
            os.replace(staged, final)
    return ArtifactResult(path, metrics)


def _run_stage(cfg, data: Dataset, inputs: dict, out: Path):
    """Run a registered stage into `out` on in-memory data, as `compress <stage>` does."""
    from compress.runner import run_single

    return run_single(cfg, data.spec, inputs, out, data=data, progress=False)


def _onnx_artifact(path: str | Path, name: str, fn: str):
    from compress import artifacts
    from compress.stages import Artifact

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"compress.{fn}: {path}: ONNX model not found")
    return Artifact(name, "onnx", path, artifacts.sha256_file(path))


def quantize(model: str | Path, data: DataLike, *, out: str | Path | None = None,
             **options: Any) -> ArtifactResult:
    """Quantize an ONNX model to int8 with ONNX Runtime, settings chosen by measuring accuracy
    and latency on this machine (see the `quantize` stage).

    Args:
        model: path of the float ONNX model (from `export`, or any ONNX classifier of `data`).
        data: as in `train` (calibration from train, choices on val, report on test).
        out: folder for `model.onnx` and `quantize.json`; default `<model stem>_int8/`
            beside the model.
        **options: any field of the `quantize` stage (`calibration`, `format`,
            `activation_type`, `max_val_accuracy_drop_pts`, ...).

    Returns:
        ArtifactResult: the int8 file and its metrics (`test_accuracy_pct`,
        `accuracy_drop_pts`, `speedup_vs_fp32_b1`, `size_bytes`, ...).

    Raises:
        compress.errors.ConfigError: a bad option or a missing file (one line).

    Example:
        >>> import compress
        >>> r = compress.quantize("/tmp/mlp.onnx", "digits", calibration={"samples": 128})
        >>> r.path.name
        'model.onnx'
    """
    from compress.stages.quantize import QuantizeConfig

    cfg = _config(QuantizeConfig, "quantize", {"id": "quantize", "input": "model", **options})
    ds = _dataset(data)
    src = _onnx_artifact(model, "model", "quantize")
    folder = Path(out) if out else src.path.with_name(f"{src.path.stem}_int8")
    result = _run_stage(cfg, ds, {"model": src}, folder)
    return ArtifactResult(folder / result.primary, result.metrics)


def _name(path: Path) -> str:
    """`out/student_int8/model.onnx` -> student_int8; `teacher.onnx` -> teacher."""
    return path.parent.name if path.stem == "model" and path.parent.name else path.stem


def bench(models: list[str | Path] | dict[str, str | Path], data: DataLike, *,
          out: str | Path | None = None, **options: Any) -> BenchResult:
    """Measure ONNX models side by side in ONNX Runtime: accuracy, size, latency p50/p90/p99
    per batch size and thread count (interleaved), peak memory, energy per inference.

    Args:
        models: paths, or {name: path}; the first is the baseline.
        data: as in `train`.
        out: folder for `bench.json` and `bench.md`; default `bench/` beside the first model.
        **options: any field of the `bench` stage (`batch_sizes`, `threads`, `min_time_s`,
            `memory`, `energy_time_s`, ...); `peers` needs a pipeline (`compress.run`).

    Returns:
        BenchResult: flat metrics (`<name>.b1_t1.p50_ms`, `<name>.accuracy_pct`, ...) and the
        table (`.summary()`).

    Raises:
        compress.errors.ConfigError: a bad option or a missing file (one line).

    Example:
        >>> import compress
        >>> b = compress.bench(["/tmp/mlp.onnx"], "digits", min_time_s=0.1, memory=False)
        >>> "mlp.b1_t1.p50_ms" in b.metrics
        True
    """
    from compress.stages.bench import BenchConfig

    named = models if isinstance(models, dict) else {_name(Path(p)): p for p in models}
    if len(named) != len(models):
        raise ConfigError("compress.bench: argument 'models': two files share a name; pass "
                          "{name: path}")
    cfg = _config(BenchConfig, "bench", {"id": "bench", "models": list(named), **options})
    ds = _dataset(data)
    inputs = {n: _onnx_artifact(p, n, "bench") for n, p in named.items()}
    folder = Path(out) if out else Path(next(iter(named.values()))).parent / "bench"
    result = _run_stage(cfg, ds, inputs, folder)
    return BenchResult(result.metrics, (folder / "bench.md").read_text(), folder / "bench.json")


def run(pipeline: str | Path | dict, *, out: str | Path = "exported", trust_code: bool = False,
        force: bool = False, progress: bool = True) -> RunResult:
    """Run a pipeline (a YAML file, or the same as a dict) as `compress run` does.

    Args:
        pipeline: path of a pipeline YAML, or its content as a dict (paths and factory modules
            are then found from the working folder).
        out: root folder; artifacts go to `out/<pipeline name>/<stage id>/`.
        trust_code: allow `arch: python` models (`compress run --trust-code`).
        force: rerun every stage, ignoring the cache.
        progress: show progress, as `compress run` does (on by default); False for none.

    Returns:
        RunResult: the run's folder, manifest (metrics per stage, gates), ran and cached ids.

    Raises:
        compress.errors.ConfigError: a malformed pipeline (one line naming file, stage, field).
        compress.errors.GateError: a gate failed (`.results` lists every gate).

    Example:
        >>> import compress
        >>> r = compress.run("pipelines/smoke.yaml", out="/tmp/exported")
        >>> r.metrics("teacher")["test_accuracy_pct"] > 70
        True
    """
    from compress.config import load_pipeline, parse_pipeline
    from compress.runner import run_pipeline

    if isinstance(pipeline, dict):
        cfg, source = parse_pipeline(pipeline, "pipeline (dict)", Path.cwd()), "pipeline (dict)"
    else:
        cfg, source = load_pipeline(pipeline), str(pipeline)
    s = run_pipeline(cfg, out, force=force, progress=progress, source=source,
                     log=lambda m: None, trust_code=trust_code)
    return RunResult(s.root, s.manifest, s.ran, s.cached)
