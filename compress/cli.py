"""`compress` command line: `run` and `validate` for pipelines, one command per stage, `report`.

Thin by design: options come from the stages' config classes, work is done by the runner.
Exit codes: 0 ok, 1 a gate failed, 2 bad input (one line, no traceback unless --debug),
3 internal error, 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path

import click

from compress import __version__
from compress.cli_options import YamlValue, build_config, config_options
from compress.errors import CompressError, GateError
from compress.measure.energy import EnergyConfig


class CompressGroup(click.Group):
    """Turns errors into one line and an exit code; `--debug` shows tracebacks instead."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug", False)
        try:
            return super().invoke(ctx)
        except GateError as e:
            click.echo(gate_table(e.results), err=True)
            click.echo(f"gates failed: {e}", err=True)
            ctx.exit(1)
        except CompressError as e:
            if debug:
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished stages are kept; rerun to resume", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:
            if debug:
                raise
            first = str(e).splitlines()[0][:300] if str(e) else ""
            click.echo(f"internal error: {type(e).__name__}: {first} (rerun with --debug for the "
                       "traceback, and please report it)", err=True)
            ctx.exit(3)


def gate_table(results: list[dict]) -> str:
    rows = [("gate", "wanted", "measured", "result")]
    rows += [(g["gate"], g["wanted"], g["measured"], "pass" if g["passed"] else "FAIL")
             for g in results]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


@click.group(cls=CompressGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show full tracebacks instead of one-line errors")
@click.version_option(__version__, prog_name="compress")
def cli(debug: bool) -> None:
    """Train, compress, export and benchmark models; see `compress run --help`."""


@cli.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option("--out", "out_root", default="exported", show_default=True, type=click.Path(
    path_type=Path), help="root folder; artifacts go to OUT/<pipeline name>/<stage id>/")
@click.option("--force", is_flag=True, help="rerun every stage, ignoring the cache")
@click.option("--no-progress", is_flag=True, help="no progress bars")
@config_options(EnergyConfig, skip=set())
def run(pipeline: Path, out_root: Path, force: bool, no_progress: bool, **energy) -> None:
    """Run the pipeline in PIPELINE (YAML), skipping stages whose inputs did not change.

    The energy options override the pipeline's `energy:` section."""
    from compress.config import load_pipeline
    from compress.runner import run_pipeline

    cfg = load_pipeline(pipeline)
    given = {k: v for k, v in energy.items() if v is not None}
    if given:
        merged = {**cfg.energy.model_dump(exclude_unset=True), **given}
        cfg = cfg.model_copy(update={"energy": build_config(EnergyConfig, "compress run",
                                                            merged)})
    try:
        summary = run_pipeline(cfg, out_root, force=force, progress=not no_progress,
                               source=str(pipeline), log=lambda m: click.echo(m, err=True))
    except GateError as e:
        click.echo(f"report: {Path(out_root) / cfg.name / 'report.md'}", err=True)
        raise e
    for sid in summary.manifest["stages"]:
        if summary.manifest["stages"][sid]["stage"] == "bench":
            click.echo((summary.root / sid / "bench.md").read_text())
    if summary.manifest.get("gates"):
        click.echo(gate_table(summary.manifest["gates"]))
    click.echo(f"ran {len(summary.ran)} stage(s), {len(summary.cached)} cached; "
               f"report: {summary.root / 'report.md'}")


@cli.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
def validate(pipeline: Path) -> None:
    """Check a pipeline file without running it."""
    from compress.config import load_pipeline

    cfg = load_pipeline(pipeline)
    ids = ", ".join(f"{s.id} ({s.stage})" for s in cfg.stages)
    click.echo(f"{pipeline}: ok: pipeline '{cfg.name}', {len(cfg.stages)} stages: {ids}")


def _data_config(value, where: str):
    from pydantic import TypeAdapter, ValidationError

    from compress.cli_options import option_error
    from compress.data import DataConfig
    from compress.errors import ConfigError

    if isinstance(value, str):
        value = {"source": value}
    try:
        return TypeAdapter(DataConfig).validate_python(value)
    except ValidationError as e:
        raise ConfigError(f"{where}{option_error(DataConfig, value, e, option='--data')}") from e


def _run_standalone(cfg, data_cfg, inputs, out: Path, energy=None) -> None:
    from compress.runner import run_single

    metrics = run_single(cfg, data_cfg, inputs, out, energy=energy)
    for k, v in metrics.items():
        click.echo(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    click.echo(f"wrote {out}/")


def _stage_cls(name: str):
    from compress.stages import STAGES

    return STAGES[name].config_cls


OUT_OPTION = click.option("--out", required=True, type=click.Path(path_type=Path),
                          help="folder for this stage's files (replaced atomically)")


@cli.command()
@click.option("--data", "data", required=True, type=YamlValue(),
              help="digits | mnist1d | inline YAML, e.g. '{source: npz, path: my.npz}'")
@OUT_OPTION
@config_options(_stage_cls("train"), skip={"id", "stage"})
def train(data, out: Path, **values) -> None:
    """Train a model (a teacher) and write a self-describing checkpoint, model.pt."""
    cfg = build_config(_stage_cls("train"), "compress train", {"id": "train", **values})
    _run_standalone(cfg, _data_config(data, "compress train: option "), {}, out)


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@OUT_OPTION
@config_options(_stage_cls("export"), skip={"id", "stage", "input"})
def export(checkpoint: Path, out: Path, **values) -> None:
    """Export CHECKPOINT to ONNX, check parity with PyTorch and measure accuracy in ORT."""
    from compress import artifacts
    from compress.stages import Artifact

    ckpt = artifacts.load_checkpoint(checkpoint)
    cfg = build_config(_stage_cls("export"), "compress export",
                       {"id": "export", "input": "checkpoint", **values})
    art = Artifact("checkpoint", "checkpoint", checkpoint, artifacts.sha256_file(checkpoint))
    _run_standalone(cfg, _data_config(ckpt["data"], f"{checkpoint}: data "),
                    {"checkpoint": art}, out)


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--data", "data", type=YamlValue(), default=None,
              help="data to test on; default: the data recorded in the first model's metadata")
@config_options(_stage_cls("bench"), skip={"id", "stage", "models"})
@config_options(EnergyConfig, skip=set())
def bench(models: tuple[Path, ...], out: Path, data, **values) -> None:
    """Benchmark ONNX MODELS side by side in ONNX Runtime (first one is the baseline).

    --peers '{checkpoint: teacher/model.pt, onnx: teacher.onnx}' (paths) adds the PyTorch eager
    and ORT quantize_static / quantize_dynamic baselines of that teacher."""
    from compress import artifacts
    from compress.errors import ConfigError
    from compress.measure.ort import read_metadata
    from compress.stages import Artifact

    def artifact(path: Path, kind: str, what: str) -> Artifact:
        if not path.is_file():
            raise ConfigError(f"compress bench: {path}: {what} not found")
        name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
        name = next((n for n, a in names.items() if a.path == path), None) or (
            f"{name}-{len(names)}" if name in names else name)
        return Artifact(name, kind, path, artifacts.sha256_file(path))

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
    cfg = build_config(_stage_cls("bench"), "compress bench",
                       {"id": "bench", "models": listed, **values})
    energy_cfg = build_config(EnergyConfig, "compress bench",
                              {k: v for k, v in energy.items() if v is not None})
    _run_standalone(cfg, _data_config(data, "compress bench: option "), names, out, energy_cfg)
    click.echo((out / "bench.md").read_text())


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--summary", is_flag=True, help="print only the summary table and the paths")
def report(folder: Path, summary: bool) -> None:
    """Write FOLDER/report.md, report.json and PNG plots from a pipeline's outputs; print it."""
    from compress.report import write_report

    out = write_report(folder)
    if not summary:
        click.echo(out["markdown"])
        return
    click.echo(out["summary"] or "(no bench stage: nothing to summarise)")
    click.echo(f"\nreport: {folder / 'report.md'} (plots and report.json beside it: "
               f"{', '.join(out['files'][1:])})")


def main() -> None:
    cli(prog_name="compress")


if __name__ == "__main__":
    main()
