"""`compress run --junit PATH --summary-md PATH --json`: the run's outcome in the forms CI systems
read. The options are checked before anything runs; the reports are written once the run has
reached its first stage, however it ends (passed, gate failed, stage failed, interrupted), and
bad input found before that writes nothing, like every other bad input."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path

import click

from compress.cli.options import LazyOptionsCommand, build_config, lazy_options
from compress.errors import CompressError, ConfigError, GateError


def check_report_path(path: Path | None, option: str, command: str = "compress run") -> None:
    """Refuse, before the run, a report path that cannot be written: a folder, a file where a
    folder should be, a read-only folder. Missing folders are created when writing."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{command}: option {option}: {path} is a folder; give a file path")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise ConfigError(f"{command}: option {option}: {parent} is a file, not a folder; "
                          "choose another path")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{command}: option {option}: {parent} is not writable; choose "
                          "another path")


class CiReports:
    """Collects how a run goes (from the runner's events) and writes the reports at the end."""

    def __init__(self, junit: Path | None, summary_md: Path | None, as_json: bool):
        check_report_path(junit, "--junit")
        check_report_path(summary_md, "--summary-md")
        self.junit, self.summary_md, self.as_json = junit, summary_md, as_json
        self.cfg = None
        self.root: Path | None = None
        self.started: list[str] = []
        self.finished: dict[str, str] = {}
        self.failed: str | None = None
        self.summary = None

    def echo(self, text: str) -> None:
        """Human output: stdout, or stderr when stdout carries the JSON summary."""
        click.echo(text, err=self.as_json)

    def listen(self, event) -> None:
        """The runner's events (compress.events): which stages started and how each ended."""
        from compress.events import StageCached, StageFailed, StageFinished, StageStarted

        if isinstance(event, StageFailed):
            self.failed = event.stage_id
        elif isinstance(event, StageStarted):
            self.started.append(event.stage_id)
        elif isinstance(event, StageCached | StageFinished):
            self.finished[event.stage_id] = "cached" if isinstance(event, StageCached) else "ran"

    @contextlib.contextmanager
    def run(self):
        """Around `compress run`: on the way out, the reports for whatever happened."""
        try:
            yield self
        except GateError:
            self._write("gates_failed", None)
            raise
        except KeyboardInterrupt:
            self._write("interrupted", None)
            raise
        except CompressError as e:
            self._write("error", e)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            self._write("error", e, exit_code=3)
            raise
        else:
            self._write("passed", None)

    def _write(self, status: str, error: BaseException | None, exit_code: int | None = None):
        from compress import artifacts, launch
        from compress.report import ci

        if self.cfg is None or not (self.started or self.finished) or not launch.is_main():
            return  # bad input, found before the run began: nothing is written
        root = self.root
        try:
            manifest = artifacts.read_json(root / "manifest.json")
        except CompressError:
            manifest = {}
        pending = [s for s in self.started if s not in self.finished]
        outcome = ci.RunOutcome(
            pipeline=self.cfg.name, root=root, stages=[(s.id, s.stage) for s in self.cfg.stages],
            has_gates=self.cfg.gates is not None, manifest=manifest, finished=self.finished,
            status=status, failed_stage=self.failed or (pending[-1] if pending else None),
            exit_code=exit_code,
            error=(str(error) or type(error).__name__) if error else None,
            error_type=type(error).__name__ if error else None)
        if self.junit:
            ci.write_junit(self.junit, outcome)
        if self.summary_md:
            ci.append_markdown(self.summary_md, ci.summary_markdown(outcome))
        if self.as_json:
            files = {"junit": str(self.junit) if self.junit else None,
                     "summary_md": str(self.summary_md) if self.summary_md else None}
            click.echo(json.dumps(ci.summary_json(outcome, files), indent=2, default=str))


def ci_options(fn):
    """Adds --junit, --summary-md and --json to `compress run`; the command gets `ci`."""

    @functools.wraps(fn)
    def wrapper(*args, junit, summary_md, as_json, **kwargs):
        ci = CiReports(junit, summary_md, as_json)
        with ci.run():
            return fn(*args, ci=ci, **kwargs)

    options = [
        click.option("--junit", type=click.Path(path_type=Path), default=None,
                     help="write every stage and gate as a JUnit XML test case to this file"),
        click.option("--summary-md", type=click.Path(path_type=Path), default=None,
                     help="append the result as Markdown to this file (created if missing), "
                          'e.g. "$GITHUB_STEP_SUMMARY"'),
        click.option("--json", "as_json", is_flag=True,
                     help="print a JSON summary on stdout (the usual output goes to stderr)"),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@click.command("compare", cls=LazyOptionsCommand)
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@lazy_options("report.compare:CompareConfig", skip=set())
@click.option("--md", "md", type=click.Path(path_type=Path), default=None,
              help='append the comparison as Markdown to this file, e.g. "$GITHUB_STEP_SUMMARY"')
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
def compare(baseline: Path, candidate: Path, md: Path | None, as_json: bool, **values):
    """Compare two runs (BASELINE and CANDIDATE: exported/<pipeline> folders): accuracy,
    size and energy as benched, latency of both re-measured here, interleaved.

    Exit 0 when every threshold holds (or none is given), 1 when the shipped model regressed
    beyond one, 2 when a folder is not a run with a bench stage."""
    from compress.report.ci import append_markdown, compare_markdown
    from compress.report.compare import CompareConfig, compare_runs

    check_report_path(md, "--md", "compress compare")
    cfg = build_config(CompareConfig, "compress compare", values)
    result = compare_runs(baseline, candidate, cfg)
    text = compare_markdown(result)
    if md:
        append_markdown(md, text)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else text)
    failed = [c for c in result["checks"] if not c["passed"]]
    if failed:
        raise GateError(f"{len(failed)} of {len(result['checks'])} check(s) failed: the "
                        "candidate regressed", result["checks"])

