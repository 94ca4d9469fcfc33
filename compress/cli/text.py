"""The text stages one at a time: `compress pretrained`, `embed-distill`, `embed-export`,
`embed-quantize` and `embed-bench`, options generated from the same config classes as the YAML
steps (like `compress train` & co). Each reads the files the previous one wrote:

    compress pretrained --data pydoc --out t
    compress embed-distill t/model.pt --layers 0 --layers 5 --ff-neurons 768 --out s
    compress embed-export s/model.pt --out s_onnx
    compress embed-quantize s_onnx/model.onnx --teacher t/model.pt --out s_int8
    compress embed-export t/model.pt --out t_onnx
    compress embed-bench t_onnx/model.onnx s_int8/model.onnx --teacher t/model.pt --out bench
"""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.options import LazyOptionsCommand, YamlValue, build_config, lazy_options
from compress.cli.stage import OUT_OPTION, checkpoint_input, data_config, run_standalone, stage_cls

TEACHER_OPTION = click.option(
    "--teacher", "teacher", required=True, type=click.Path(path_type=Path),
    help="model.pt of a `compress pretrained` run (its embeddings.npz beside it is the target)")


def _artifact(path: Path, name: str, kind: str, command: str):
    from compress import artifacts
    from compress.errors import ConfigError
    from compress.stages import Artifact

    if not path.is_file():
        raise ConfigError(f"compress {command}: {path}: not found")
    return Artifact(name, kind, path, artifacts.sha256_file(path))


def _onnx_data(path: Path, command: str):
    """The data spec recorded in an exported encoder's metadata."""
    from compress.errors import ConfigError
    from compress.measure.ort import read_metadata

    data = read_metadata(path).get("compress.data")
    if data is None:
        raise ConfigError(f"compress {command}: {path} carries no data spec in its metadata; "
                          "export it with `compress embed-export`")
    return data_config(data, f"{path}: data ")


def _from_checkpoint(stage: str, path: Path, field: str, out: Path, values: dict) -> None:
    """Run `stage` on the checkpoint at `path` (its config field `field`), on the data the
    checkpoint records."""
    art, data = checkpoint_input(path, field)
    cfg = build_config(stage_cls(stage), f"compress {stage.replace('_', '-')}",
                       {"id": stage, field: field, **values})
    run_standalone(cfg, data_config(data, f"{path}: data "), {field: art}, out)


@click.command("pretrained", cls=LazyOptionsCommand)
@click.option("--data", "data", default="pydoc", show_default=True, type=YamlValue(),
              help="text data: pydoc | inline YAML, e.g. "
                   "'{source: pydoc, extra_train: [stdlib_docstrings]}'")
@OUT_OPTION
@lazy_options("pretrained", skip={"id", "stage"})
def pretrained(data, out: Path, **values) -> None:
    """Start from a pretrained sentence encoder (offline): checkpoint, tokenizer, and its
    embeddings of every sentence (the targets of the commands below)."""
    cfg = build_config(stage_cls("pretrained"), "compress pretrained",
                       {"id": "pretrained", **values})
    run_standalone(cfg, data_config(data, "compress pretrained: option "), {}, out)


@click.command("embed-distill", cls=LazyOptionsCommand)
@click.argument("teacher", type=click.Path(path_type=Path))
@OUT_OPTION
@lazy_options("embed_distill", skip={"id", "stage", "teacher"})
def embed_distill(teacher: Path, out: Path, **values) -> None:
    """Cut a student encoder from the TEACHER checkpoint (a `pretrained` model.pt) and train it
    to reproduce the teacher's embeddings."""
    _from_checkpoint("embed_distill", teacher, "teacher", out, values)


@click.command("embed-export", cls=LazyOptionsCommand)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@OUT_OPTION
@lazy_options("embed_export", skip={"id", "stage", "input"})
def embed_export(checkpoint: Path, out: Path, **values) -> None:
    """Export a sentence-encoder CHECKPOINT to ONNX (dynamic batch and sequence), parity
    checked against PyTorch, tokenizer beside it."""
    _from_checkpoint("embed_export", checkpoint, "input", out, values)


@click.command("embed-quantize", cls=LazyOptionsCommand)
@click.argument("model", type=click.Path(path_type=Path))
@TEACHER_OPTION
@OUT_OPTION
@lazy_options("embed_quantize", skip={"id", "stage", "input", "teacher"})
def embed_quantize(model: Path, teacher: Path, out: Path, **values) -> None:
    """Quantize the exported encoder MODEL to int8, static or dynamic chosen by measuring
    cosine to the teacher and latency."""
    inputs = {"input": _artifact(model, "input", "onnx", "embed-quantize"),
              "teacher": _artifact(teacher, "teacher", "checkpoint", "embed-quantize")}
    cfg = build_config(stage_cls("embed_quantize"), "compress embed-quantize",
                       {"id": "embed_quantize", "input": "input", "teacher": "teacher", **values})
    run_standalone(cfg, _onnx_data(model, "embed-quantize"), inputs, out)


@click.command("embed-bench", cls=LazyOptionsCommand)
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@TEACHER_OPTION
@OUT_OPTION
@lazy_options("embed_bench", skip={"id", "stage", "models", "teacher"})
def embed_bench(models: tuple[Path, ...], teacher: Path, out: Path, **values) -> None:
    """Benchmark exported encoder MODELS side by side in ONNX Runtime (the first is the
    baseline): size, latency, test cosine and neighbour recall against the teacher."""
    inputs = {"teacher": _artifact(teacher, "teacher", "checkpoint", "embed-bench")}
    for path in models:  # named after their folder, like `compress bench`
        name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
        name = f"{name}-{len(inputs)}" if name in inputs else name
        inputs[name] = _artifact(path, name, "onnx", "embed-bench")
    listed = [n for n in inputs if n != "teacher"]
    cfg = build_config(stage_cls("embed_bench"), "compress embed-bench",
                       {"id": "embed_bench", "models": listed, "teacher": "teacher", **values})
    run_standalone(cfg, _onnx_data(models[0], "embed-bench"), inputs, out)
