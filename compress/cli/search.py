"""`compress search TEACHER --space '{...}'`: the `search` stage alone, its options generated
from the stage's config class; `--workers N` runs N worker processes on one study, and the same
command on other machines with the same `--storage` and `--study-name` adds workers there."""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.options import LazyOptionsCommand, build_config, lazy_options
from compress.cli.stage import OUT_OPTION, TRUST_OPTION, data_config, run_standalone, stage_cls


@click.command(cls=LazyOptionsCommand)
@click.argument("teacher", type=click.Path(path_type=Path))
@OUT_OPTION
@TRUST_OPTION
@lazy_options("search", skip={"id", "stage", "teacher", "reference"})
def search(teacher: Path, out: Path, trust_code: bool, **values) -> None:
    """Search the student for the TEACHER checkpoint (or ONNX model): the fastest model in ONNX
    Runtime that keeps the accuracy, chosen by Optuna over the space given with --space."""
    from compress import artifacts
    from compress.errors import ConfigError
    from compress.measure.ort import read_metadata
    from compress.models.python import trust_code as trusting
    from compress.onnx.external import model_sha256
    from compress.stages import Artifact

    if not teacher.is_file():
        raise ConfigError(f"compress search: {teacher}: teacher not found")
    if teacher.suffix == ".onnx":
        art = Artifact("teacher", "onnx", teacher, model_sha256(teacher))
        data = read_metadata(teacher).get("compress.data")
    else:
        art = Artifact("teacher", "checkpoint", teacher, artifacts.sha256_file(teacher))
        data = artifacts.load_checkpoint(teacher)["data"]
    if data is None:
        raise ConfigError(f"compress search: {teacher} carries no data spec")
    cfg = build_config(stage_cls("search"), "compress search",
                       {"id": "search", "teacher": "teacher", **values})
    with trusting(trust_code):
        run_standalone(cfg, data_config(data, f"{teacher}: data "), {"teacher": art}, out)
    if (out / "pick.yaml").is_file():
        click.echo("the pick as pipeline steps:\n" + (out / "pick.yaml").read_text())
