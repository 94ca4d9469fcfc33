"""One command per array stage (`compress train`, `distill`, `prune`, `export`, `quantize`,
`bench`, `explain`): parse, build the stage's config, run it alone, print. Each command's
options come from its stage's config class, built when the command is first used."""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.artifacts import FORMAT_OPTION, export_formats, onnx_input
from compress.cli.options import LazyOptionsCommand, YamlValue, build_config, lazy_options
from compress.cli.stage import (
    OUT_OPTION,
    TRUST_OPTION,
    checkpoint_input,
    data_config,
    run_standalone,
    stage_cls,
    user_model,
)

ENERGY = "measure.energy:EnergyConfig"

@click.command(cls=LazyOptionsCommand)
@click.option("--data", "data", required=True, type=YamlValue(),
              help="digits | mnist1d | inline YAML, e.g. '{source: npz, path: my.npz}'")
@OUT_OPTION
@TRUST_OPTION
@lazy_options("train", skip={"id", "stage"})
def train(data, out: Path, trust_code: bool, **values) -> None:
    """Train a model (a teacher) and write a self-describing checkpoint, model.pt."""
    from compress.models.python import trust_code as trusting

    values = user_model(values, "compress train")
    cfg = build_config(stage_cls("train"), "compress train", {"id": "train", **values})
    with trusting(trust_code):
        run_standalone(cfg, data_config(data, "compress train: option "), {}, out)


@click.command(cls=LazyOptionsCommand)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@OUT_OPTION
@FORMAT_OPTION
@TRUST_OPTION
@lazy_options("export", skip={"id", "stage", "input"})
def export(checkpoint: Path, out: Path, fmt: str, trust_code: bool, **values) -> None:
    """Export CHECKPOINT to ONNX, check parity with PyTorch and measure accuracy in ORT."""
    from compress import artifacts
    from compress.models.python import trust_code as trusting
    from compress.stages import Artifact

    if onnx_input(checkpoint):
        return export_formats(checkpoint, out, fmt, given=True)
    ckpt = artifacts.load_checkpoint(checkpoint)
    cfg = build_config(stage_cls("export"), "compress export",
                       {"id": "export", "input": "checkpoint", **values})
    art = Artifact("checkpoint", "checkpoint", checkpoint, artifacts.sha256_file(checkpoint))
    with trusting(trust_code):
        run_standalone(cfg, data_config(ckpt["data"], f"{checkpoint}: data "),
                       {"checkpoint": art}, out)
    export_formats(out / "model.onnx", out, fmt)


@click.command(cls=LazyOptionsCommand)
@click.argument("teacher", type=click.Path(path_type=Path))
@OUT_OPTION
@TRUST_OPTION
@lazy_options("distill", skip={"id", "stage", "teacher"})
def distill(teacher: Path, out: Path, trust_code: bool, **values) -> None:
    """Train a student from the TEACHER checkpoint (knowledge distillation), and the same student
    without the teacher, so the gain is measured."""
    from compress.models.python import trust_code as trusting

    with trusting(trust_code):
        art, data = checkpoint_input(teacher, "teacher")
        cfg = build_config(stage_cls("distill"), "compress distill",
                           {"id": "distill", "teacher": "teacher",
                            **user_model(values, "compress distill")})
        run_standalone(cfg, data_config(data, f"{teacher}: data "), {"teacher": art}, out)


@click.command(cls=LazyOptionsCommand)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--teacher", "teacher", type=click.Path(path_type=Path), default=None,
              help="checkpoint that fine-tuning distills from (default: labels only)")
@TRUST_OPTION
@lazy_options("prune", skip={"id", "stage", "input", "teacher"})
def prune(checkpoint: Path, out: Path, teacher: Path | None, trust_code: bool,
          **values) -> None:
    """Prune CHECKPOINT (structured: channels removed for real; or unstructured sparsity)."""
    from compress.models.python import trust_code as trusting

    art, data = checkpoint_input(checkpoint, "input")
    inputs = {"input": art}
    if teacher is not None:
        inputs["teacher"] = checkpoint_input(teacher, "teacher")[0]
    cfg = build_config(stage_cls("prune"), "compress prune",
                       {"id": "prune", "input": "input",
                        "teacher": "teacher" if teacher else None, **values})
    with trusting(trust_code):
        run_standalone(cfg, data_config(data, f"{checkpoint}: data "), inputs, out)


@click.command(cls=LazyOptionsCommand)
@click.argument("model", type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--data", "data", type=YamlValue(), default=None,
              help="data to calibrate and test on; default: the data in the model's metadata")
@lazy_options("quantize", skip={"id", "stage", "input"})
def quantize(model: Path, out: Path, data, **values) -> None:
    """Quantize the ONNX MODEL to int8 with ONNX Runtime, settings chosen by measurement."""
    from compress.errors import ConfigError
    from compress.measure.ort import read_metadata
    from compress.onnx.external import model_sha256
    from compress.stages import Artifact

    if not model.is_file():
        raise ConfigError(f"compress quantize: {model}: ONNX model not found")
    if data is None:
        data = read_metadata(model).get("compress.data")
        if data is None:
            raise ConfigError(f"compress quantize: {model} carries no data spec in its "
                              "metadata; pass --data")
    cfg = build_config(stage_cls("quantize"), "compress quantize",
                       {"id": "quantize", "input": "input", **values})
    art = Artifact("input", "onnx", model, model_sha256(model))
    run_standalone(cfg, data_config(data, "compress quantize: option "), {"input": art}, out)


@click.command(cls=LazyOptionsCommand)
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--data", "data", type=YamlValue(), default=None,
              help="data to test on; default: the data recorded in the first model's metadata")
@lazy_options("bench", skip={"id", "stage", "models"})
@lazy_options(ENERGY, skip=set())
def bench(models: tuple[Path, ...], out: Path, data, **values) -> None:
    """Benchmark ONNX MODELS side by side in ONNX Runtime (first one is the baseline).

    --peers '{checkpoint: teacher/model.pt, onnx: teacher.onnx}' (paths) adds the PyTorch eager
    and ORT quantize_static / quantize_dynamic baselines of that teacher."""
    from compress import artifacts
    from compress.errors import ConfigError
    from compress.measure.energy import EnergyConfig
    from compress.measure.ort import read_metadata
    from compress.onnx.external import model_sha256
    from compress.stages import Artifact

    def artifact(path: Path, kind: str, what: str) -> Artifact:
        if not path.is_file():
            raise ConfigError(f"compress bench: {path}: {what} not found")
        name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
        name = next((n for n, a in names.items() if a.path == path), None) or (
            f"{name}-{len(names)}" if name in names else name)
        sha = model_sha256(path) if kind == "onnx" else artifacts.sha256_file(path)
        return Artifact(name, kind, path, sha)

    names: dict[str, Artifact] = {}
    for path in models:
        art = artifact(path, "onnx", "ONNX model")
        names[art.stage_id] = art
    listed = list(names)
    energy = {k: values.pop(k) for k in EnergyConfig.model_fields if k in values}
    peers = values.get("peers")
    if isinstance(peers, dict):  # on the command line the peers are paths, not stage ids
        for key, kind, what in (("checkpoint", "checkpoint", "checkpoint"),
                                ("onnx", "onnx", "ONNX model")):
            if isinstance(peers.get(key), str):
                art = artifact(Path(peers[key]), kind, what)
                names[art.stage_id] = art
                peers = {**peers, key: art.stage_id}
        values["peers"] = peers
    if data is None:
        data = read_metadata(models[0]).get("compress.data")
        if data is None:
            raise ConfigError(f"compress bench: {models[0]} carries no data spec in its metadata; "
                              "pass --data")
    cfg = build_config(stage_cls("bench"), "compress bench",
                       {"id": "bench", "models": listed, **values})
    energy_cfg = build_config(EnergyConfig, "compress bench",
                              {k: v for k, v in energy.items() if v is not None})
    run_standalone(cfg, data_config(data, "compress bench: option "), names, out, energy_cfg)
    click.echo((out / "bench.md").read_text())


@click.command(cls=LazyOptionsCommand)
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--teacher", "teacher", required=True, type=click.Path(path_type=Path),
              help="the teacher's checkpoint (model.pt) that the first MODEL was exported from")
@click.option("--checkpoints", "checkpoints", multiple=True, type=click.Path(path_type=Path),
              help="checkpoints also explained by --gradient (repeatable)")
@click.option("--data", "data", type=YamlValue(), default=None,
              help="data to explain on; default: the data in the first model's metadata")
@lazy_options("explain", skip={"id", "stage", "teacher", "models", "checkpoints"})
def explain(models: tuple[Path, ...], out: Path, teacher: Path, checkpoints: tuple[Path, ...],
            data, **values) -> None:
    """Attribution fidelity of ONNX MODELS (the first: the teacher's export) against the
    teacher, with the randomized-teacher and other-class sanity references."""
    from compress.cli.explain import explain_inputs

    names, data_cfg = explain_inputs(models, teacher, checkpoints, data)
    cfg = build_config(stage_cls("explain"), "compress explain", {
        "id": "explain", "teacher": "teacher", "models": [f"m{i}" for i in range(len(models))],
        "checkpoints": [f"c{i}" for i in range(len(checkpoints))], **values})
    run_standalone(cfg, data_cfg, names, out)
    click.echo((out / "explain.md").read_text())
