"""`compress` command line: the group, and where each command lives. Commands are imported when
asked for (`compress --help` reads the table below, not the modules), and heavy libraries only
inside the commands, so the command line starts without torch.

Thin by design: options come from the stages' config classes, work is done by the runner.
Exit codes: 0 ok, 1 a gate failed (or `verify` found a changed file), 2 bad input (one line,
no traceback unless --debug), 3 internal error, 130 interrupted.
"""

from __future__ import annotations

import importlib

import click
from click.utils import make_default_short_help

from compress import __version__
from compress.errors import CompressError, GateError, MirroredError
from compress.launch import rank_prefix

# name -> (module in compress.cli, attribute, first sentence of its help: what `compress --help`
# lists; tests/cli/test_main.py checks it against the command's own docstring)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("pipeline", "run", "Run the pipeline in PIPELINE (YAML), skipping "
            "stages whose inputs did not change."),
    "validate": ("pipeline", "validate", "Check a pipeline file without running "
                 "it: its fields and stages, and its data (the file opened, every array and "
                 "shape checked, as `run` does before the first stage)."),
    "report": ("pipeline", "report", "Write FOLDER/report.md, report.json and PNG "
               "plots from a pipeline's outputs; print it."),
    "verify": ("pipeline", "verify", "Check every file FOLDER/manifest.json lists "
               "against its recorded sha256 and size."),
    "train": ("stages", "train", "Train a model (a teacher) and write a "
              "self-describing checkpoint, model.pt."),
    "distill": ("stages", "distill", "Train a student from the TEACHER checkpoint "
                "(knowledge distillation), and the same student without the teacher, so the "
                "gain is measured."),
    "prune": ("stages", "prune", "Prune CHECKPOINT (structured: channels removed "
              "for real; or unstructured sparsity)."),
    "export": ("stages", "export", "Export CHECKPOINT to ONNX, check parity with "
               "PyTorch and measure accuracy in ORT."),
    "quantize": ("stages", "quantize", "Quantize the ONNX MODEL to int8 with ONNX "
                 "Runtime, settings chosen by measurement."),
    "bench": ("stages", "bench", "Benchmark ONNX MODELS side by side in ONNX "
              "Runtime (first one is the baseline)."),
    "explain": ("stages", "explain", "Attribution fidelity of ONNX MODELS (the "
                "first: the teacher's export) against the teacher, with the randomized-teacher "
                "and other-class sanity references."),
    "search": ("search", "search", "Search the student for the TEACHER checkpoint (or "
               "ONNX model): the fastest model in ONNX Runtime that keeps the accuracy, chosen "
               "by Optuna over the space given with --space."),
    "compare": ("ci", "compare", "Compare two runs (BASELINE and CANDIDATE: "
                "exported/<pipeline> folders): accuracy, size and energy as benched, latency of "
                "both re-measured here, interleaved."),
    "inspect": ("artifacts", "inspect_command", "Describe the ONNX (or .ort) file "
                "MODEL: opsets, IR version, inputs and outputs, parameters, size, op histogram, "
                "share of weights in int8, compress.* metadata, the oldest onnxruntime that "
                "loads it and, for a `target: mobile` build (or with --mobile), how many nodes "
                "each mobile EP can run."),
    "pretrained": ("text", "pretrained", "Start from a pretrained sentence encoder "
                   "(offline): checkpoint, tokenizer, and its embeddings of every sentence (the "
                   "targets of the commands below)."),
    "embed-distill": ("text", "embed_distill", "Cut a student encoder from the "
                      "TEACHER checkpoint (a `pretrained` model.pt) and train it to reproduce "
                      "the teacher's embeddings."),
    "embed-export": ("text", "embed_export", "Export a sentence-encoder CHECKPOINT "
                     "to ONNX (dynamic batch and sequence), parity checked against PyTorch, "
                     "tokenizer beside it."),
    "embed-quantize": ("text", "embed_quantize", "Quantize the exported encoder "
                       "MODEL to int8, static or dynamic chosen by measuring cosine to the "
                       "teacher and latency."),
    "embed-bench": ("text", "embed_bench", "Benchmark exported encoder MODELS side "
                    "by side in ONNX Runtime (the first is the baseline): size, latency, test "
                    "cosine and neighbour recall against the teacher."),
}


class CompressGroup(click.Group):
    """Imports a command's module when the command is asked for, so that `compress --help`
    lists them from `COMMANDS` alone; turns errors into one line and an exit code (`--debug`
    shows tracebacks instead)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            module, attr, _ = COMMANDS[name]
            self.add_command(getattr(importlib.import_module(f"compress.cli.{module}"), attr),
                             name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, self.commands[n].get_short_help_str(limit) if n in self.commands
                 else make_default_short_help(COMMANDS[n][2], limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept for `stage_process_group`, which starts this command line in several processes.
        ctx.meta["compress.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug", False)
        try:
            return super().invoke(ctx)
        except GateError as e:
            from compress.cli.pipeline import gate_table

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



@click.group(cls=CompressGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show full tracebacks instead of one-line errors")
@click.version_option(__version__, prog_name="compress")
def cli(debug: bool) -> None:
    """Train, compress, export and benchmark models; see `compress run --help`."""


def main() -> None:
    cli(prog_name="compress")


if __name__ == "__main__":
    main()
