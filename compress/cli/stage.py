"""What the stage commands share (`compress train`, `compress embed-distill`, ...): the data
option, the single-stage run (under torchrun where several processes are asked for), the
stage config classes and the checkpoint inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def data_config(value, where: str):
    from pydantic import TypeAdapter, ValidationError

    from compress.cli.options import option_error
    from compress.data import DataConfig
    from compress.errors import ConfigError

    if isinstance(value, str):
        value = {"source": value}
    try:
        return TypeAdapter(DataConfig).validate_python(value)
    except ValidationError as e:
        raise ConfigError(f"{where}{option_error(DataConfig, value, e, option='--data')}") from e


def stage_process_group(opts, stages, source: str):
    """Where several processes are asked for and no launcher started this one, start them with
    torch's launcher on this very command line and exit with their exit code; otherwise join
    the process group torchrun's environment describes (nothing to do for one process)."""
    from compress import launch
    from compress.runner import preflight

    if launch.should_launch(opts):
        # Checked once here, so that a bad setting is one line rather than one per process.
        preflight(stages, opts.nproc, source)
        root = click.get_current_context().find_root()
        argv = root.meta.get("compress.argv", sys.argv[1:])
        raise click.exceptions.Exit(launch.launch(opts.nproc, argv,
                                                       root.params.get("debug", False)))
    return launch.process_group(opts)


def run_standalone(cfg, data_cfg, inputs, out: Path, energy=None) -> None:
    from compress import launch
    from compress.runner import run_single

    source = f"compress {cfg.stage}"
    with stage_process_group(launch.pipeline_options([cfg], source), [cfg], source):
        metrics = run_single(cfg, data_cfg, inputs, out, energy=energy).metrics
        if not launch.is_main():
            return
    for k, v in metrics.items():
        click.echo(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    click.echo(f"wrote {out}/")


def user_model(values: dict, command: str) -> dict:
    """`values` with an `--model '{arch: python, factory: ...}'` found (not imported): the
    module is looked up in the current directory first, then among installed packages, as a
    pipeline's is beside its file."""
    model = values.get("model")
    if not (isinstance(model, dict) and model.get("arch") == "python"):
        return values
    from compress.errors import ConfigError
    from compress.models import python

    try:
        return {**values, "model": python.resolve(model, Path.cwd())}
    except ValueError as e:
        raise ConfigError(f"{command}: option --model, field 'factory': {e}") from e


def stage_cls(name: str):
    from compress.stages import STAGES

    return STAGES[name].config_cls


OUT_OPTION = click.option("--out", required=True, type=click.Path(path_type=Path),
                          help="folder for this stage's files (replaced atomically)")


def checkpoint_input(path: Path, name: str):
    """(Artifact, data spec) of a checkpoint given on the command line."""
    from compress import artifacts
    from compress.stages import Artifact

    ckpt = artifacts.load_checkpoint(path)
    return Artifact(name, "checkpoint", path, artifacts.sha256_file(path)), ckpt["data"]

TRUST_OPTION = click.option(
    "--trust-code", is_flag=True, help="allow `arch: python` models: import (and so run) the "
    "module a file names as a model factory")
