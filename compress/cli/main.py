"""`compress` command line: `run` and `validate` for pipelines, one command per stage, `report`
and `verify`.

Thin by design: options come from the stages' config classes, work is done by the runner.
Exit codes: 0 ok, 1 a gate failed (or `verify` found a changed file), 2 bad input (one line,
no traceback unless --debug), 3 internal error, 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path

import click

from compress import __version__
from compress.cli.artifacts import FORMAT_OPTION, export_formats, inspect_command, onnx_input
from compress.cli.ci import ci_options, compare
from compress.cli.options import YamlValue, build_config, config_options
from compress.cli.stage import (
    OUT_OPTION,
    TRUST_OPTION,
    checkpoint_input,
    data_config,
    run_standalone,
    stage_cls,
    stage_process_group,
)
from compress.cli.text import COMMANDS as TEXT_COMMANDS
from compress.errors import CompressError, GateError, MirroredError
from compress.measure.energy import EnergyConfig
from compress.trainer.distributed import rank_prefix


class CompressGroup(click.Group):
    """Turns errors into one line and an exit code; `--debug` shows tracebacks instead."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept for `stage_process_group`, which starts this command line in several processes.
        ctx.meta["compress.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug", False)
        try:
            return super().invoke(ctx)
        except GateError as e:
            click.echo(gate_table(e.results), err=True)
            click.echo(f"gates failed: {e}", err=True)
            ctx.exit(1)
        except MirroredError as e:
            ctx.exit(e.exit_code)  # rank 0 has printed why
        except CompressError as e:
            if debug:
                raise
            click.echo(f"{rank_prefix()}error: {e}", err=True)
            ctx.exit(e.exit_code)
        except click.UsageError as e:
            if debug:
                raise
            # Click's own parse errors (bad choice, unknown option, missing argument): one line
            # like every other bad input, instead of a usage banner.
            cmd = e.ctx.command_path if e.ctx else ctx.command_path
            msg = " ".join(e.format_message().split()).rstrip(".")
            click.echo(f"error: {cmd}: {msg} (see `{cmd} --help`)", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            if not rank_prefix():  # every rank gets the signal; one says so
                click.echo("\ninterrupted: finished stages are kept; rerun to resume", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:
            if debug:
                raise
            first = str(e).splitlines()[0][:300] if str(e) else ""
            click.echo(f"{rank_prefix()}internal error: {type(e).__name__}: {first} (rerun with "
                       "--debug for the traceback, and please report it)", err=True)
            ctx.exit(3)


def gate_table(results: list[dict]) -> str:
    rows = [("gate", "wanted", "measured", "result", "note")]
    rows += [(g["gate"], g["wanted"], g["measured"], "pass" if g["passed"] else "FAIL",
              g.get("note", "")) for g in results]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


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
@TRUST_OPTION
@config_options(EnergyConfig, skip=set())
@ci_options
def run(pipeline: Path, out_root: Path, force: bool, no_progress: bool, trust_code: bool, ci,
        **energy) -> None:
    """Run the pipeline in PIPELINE (YAML), skipping stages whose inputs did not change.

    The energy options override the pipeline's `energy:` section."""
    from compress.config import load_pipeline
    from compress.runner import run_pipeline
    from compress.trainer import distributed

    cfg = ci.cfg = load_pipeline(pipeline)
    ci.root = Path(out_root) / cfg.name
    given = {k: v for k, v in energy.items() if v is not None}  # `null` (NULL) is kept
    if given:
        merged = {**cfg.energy.model_dump(exclude_unset=True), **given}
        cfg = cfg.model_copy(update={"energy": build_config(EnergyConfig, "compress run",
                                                            merged)})
    with stage_process_group(distributed.pipeline_options(cfg.stages), cfg.stages, str(pipeline)):
        main = distributed.is_main()
        try:
            summary = run_pipeline(cfg, out_root, force=force, progress=not no_progress,
                                   source=str(pipeline), trust_code=trust_code,
                                   log=lambda m: click.echo(m, err=True) if main else None,
                                   on_event=ci.listen)
        except GateError as e:
            click.echo(f"report: {Path(out_root) / cfg.name / 'report.md'}", err=True)
            raise e
    if not main:
        return
    for sid in summary.manifest["stages"]:
        if summary.manifest["stages"][sid]["stage"] == "bench":
            ci.echo((summary.root / sid / "bench.md").read_text())
    if summary.manifest.get("gates"):
        ci.echo(gate_table(summary.manifest["gates"]))
    ci.echo(f"ran {len(summary.ran)} stage(s), {len(summary.cached)} cached; "
            f"report: {summary.root / 'report.md'}")


@cli.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
def validate(pipeline: Path) -> None:
    """Check a pipeline file without running it: its fields and stages, and its data (the file
    opened, every array and shape checked, as `run` does before the first stage)."""
    from compress.config import load_pipeline
    from compress.data import describe_data, load_dataset

    cfg = load_pipeline(pipeline)
    data = load_dataset(cfg.data)
    ids = ", ".join(f"{s.id} ({s.stage})" for s in cfg.stages)
    click.echo(f"{pipeline}: ok: pipeline '{cfg.name}', {len(cfg.stages)} stages: {ids}; "
               f"data: {describe_data(data)}")


@cli.command()
@click.option("--data", "data", required=True, type=YamlValue(),
              help="digits | mnist1d | inline YAML, e.g. '{source: npz, path: my.npz}'")
@OUT_OPTION
@config_options(stage_cls("train"), skip={"id", "stage"})
def train(data, out: Path, **values) -> None:
    """Train a model (a teacher) and write a self-describing checkpoint, model.pt."""
    cfg = build_config(stage_cls("train"), "compress train", {"id": "train", **values})
    run_standalone(cfg, data_config(data, "compress train: option "), {}, out)


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@OUT_OPTION
@FORMAT_OPTION
@TRUST_OPTION
@config_options(stage_cls("export"), skip={"id", "stage", "input"})
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


@cli.command()
@click.argument("teacher", type=click.Path(path_type=Path))
@OUT_OPTION
@config_options(stage_cls("distill"), skip={"id", "stage", "teacher"})
def distill(teacher: Path, out: Path, **values) -> None:
    """Train a student from the TEACHER checkpoint (knowledge distillation), and the same student
    without the teacher, so the gain is measured."""
    art, data = checkpoint_input(teacher, "teacher")
    cfg = build_config(stage_cls("distill"), "compress distill",
                       {"id": "distill", "teacher": "teacher", **values})
    run_standalone(cfg, data_config(data, f"{teacher}: data "), {"teacher": art}, out)


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--teacher", "teacher", type=click.Path(path_type=Path), default=None,
              help="checkpoint that fine-tuning distills from (default: labels only)")
@config_options(stage_cls("prune"), skip={"id", "stage", "input", "teacher"})
def prune(checkpoint: Path, out: Path, teacher: Path | None, **values) -> None:
    """Prune CHECKPOINT (structured: channels removed for real; or unstructured sparsity)."""
    art, data = checkpoint_input(checkpoint, "input")
    inputs = {"input": art}
    if teacher is not None:
        inputs["teacher"] = checkpoint_input(teacher, "teacher")[0]
    cfg = build_config(stage_cls("prune"), "compress prune",
                       {"id": "prune", "input": "input",
                        "teacher": "teacher" if teacher else None, **values})
    run_standalone(cfg, data_config(data, f"{checkpoint}: data "), inputs, out)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--data", "data", type=YamlValue(), default=None,
              help="data to calibrate and test on; default: the data in the model's metadata")
@config_options(stage_cls("quantize"), skip={"id", "stage", "input"})
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


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--data", "data", type=YamlValue(), default=None,
              help="data to test on; default: the data recorded in the first model's metadata")
@config_options(stage_cls("bench"), skip={"id", "stage", "models"})
@config_options(EnergyConfig, skip=set())
def bench(models: tuple[Path, ...], out: Path, data, **values) -> None:
    """Benchmark ONNX MODELS side by side in ONNX Runtime (first one is the baseline).

    --peers '{checkpoint: teacher/model.pt, onnx: teacher.onnx}' (paths) adds the PyTorch eager
    and ORT quantize_static / quantize_dynamic baselines of that teacher."""
    from compress import artifacts
    from compress.errors import ConfigError
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


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@OUT_OPTION
@click.option("--teacher", "teacher", required=True, type=click.Path(path_type=Path),
              help="the teacher's checkpoint (model.pt) that the first MODEL was exported from")
@click.option("--checkpoints", "checkpoints", multiple=True, type=click.Path(path_type=Path),
              help="checkpoints also explained by --gradient (repeatable)")
@click.option("--data", "data", type=YamlValue(), default=None,
              help="data to explain on; default: the data in the first model's metadata")
@config_options(stage_cls("explain"), skip={"id", "stage", "teacher", "models", "checkpoints"})
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


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--summary", is_flag=True, help="print only the summary table and the paths")
def report(folder: Path, summary: bool) -> None:
    """Write FOLDER/report.md, report.json and PNG plots from a pipeline's outputs; print it."""
    from compress.integrity import read_manifest
    from compress.report import write_report

    out = write_report(folder, read_manifest(folder))
    if not summary:
        click.echo(out["markdown"])
        return
    click.echo(out["summary"] or "(no bench stage: nothing to summarise)")
    click.echo(f"\nreport: {folder / 'report.md'} (plots and report.json beside it: "
               f"{', '.join(out['files'][1:])})")


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.pass_context
def verify(ctx: click.Context, folder: Path, as_json: bool) -> None:
    """Check every file FOLDER/manifest.json lists against its recorded sha256 and size.

    Exit 0 when all match; 1 when any is missing, changed or unreadable (rerun the pipeline to
    rebuild them); 2 when FOLDER is not a pipeline's output folder.
    """
    import json

    from compress.integrity import leftovers, verify_folder

    checks = verify_folder(folder)
    bad = [c for c in checks if c.status != "ok"]
    left = [p.name for p in leftovers(folder)]
    if as_json:
        click.echo(json.dumps({"folder": str(folder), "ok": not bad, "leftovers": left,
                               "files": [c.as_dict() for c in checks]}, indent=2))
    else:
        for c in checks:
            click.echo(f"{c.status:<10} {c.path}" + (f"  ({c.detail})" if c.detail else ""))
        for name in left:
            click.echo(f"note: {name} is left from an interrupted run; the next run removes it")
        click.echo(f"{len(checks) - len(bad)} of {len(checks)} file(s) match the manifest")
    if bad:
        click.echo(f"verify failed: {len(bad)} file(s) missing or changed in {folder}; rerun "
                   "the pipeline to rebuild them", err=True)
        ctx.exit(1)


cli.add_command(compare)
for _command in TEXT_COMMANDS:
    cli.add_command(_command)
cli.add_command(inspect_command)


def main() -> None:
    cli(prog_name="compress")


if __name__ == "__main__":
    main()
