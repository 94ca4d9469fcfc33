"""Pipeline commands: `run` and `validate` a pipeline file, `report` and `verify` its output
folder. The command line imports them when they are asked for (see compress.cli.main)."""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.ci import ci_options
from compress.cli.options import build_config, config_options
from compress.cli.stage import TRUST_OPTION, stage_process_group
from compress.errors import GateError
from compress.measure.energy import EnergyConfig


def gate_table(results: list[dict]) -> str:
    rows = [("gate", "wanted", "measured", "result", "note")]
    rows += [(g["gate"], g["wanted"], g["measured"], "pass" if g["passed"] else "FAIL",
              g.get("note", "")) for g in results]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


@click.command()
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
    from compress import launch
    from compress.config import load_pipeline
    from compress.runner import run_pipeline

    cfg = ci.cfg = load_pipeline(pipeline)
    ci.root = Path(out_root) / cfg.name
    given = {k: v for k, v in energy.items() if v is not None}  # `null` (NULL) is kept
    if given:
        merged = {**cfg.energy.model_dump(exclude_unset=True), **given}
        cfg = cfg.model_copy(update={"energy": build_config(EnergyConfig, "compress run",
                                                            merged)})
    with stage_process_group(launch.pipeline_options(cfg.stages), cfg.stages, str(pipeline)):
        main = launch.is_main()
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


@click.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
def validate(pipeline: Path) -> None:
    """Check a pipeline file without running it: its fields and stages, and its data (the file
    opened, every array and shape checked, as `run` does before the first stage)."""
    from compress.config import load_pipeline
    from compress.data import describe_data, load_dataset

    cfg = load_pipeline(pipeline)
    data = load_dataset(cfg.data)
    ids = ", ".join(f"{s.id} ({s.stage})" for s in cfg.stages)
    n = len(cfg.stages)
    click.echo(f"{pipeline}: ok: pipeline '{cfg.name}', {n} stage{'s' * (n != 1)}: {ids}; "
               f"data: {describe_data(data)}")


@click.command()
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


@click.command()
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
