"""Commands about finished artifacts: `compress inspect` and the edge formats of `compress
export --format` (registered in cli.py; kept here so that cli.py stays thin)."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("onnx", "ort")
FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="onnx", show_default=True,
    help="onnx, or ort: also convert to ORT format with onnxruntime's own converter (model.ort "
         "+ model.required_operators.config for a reduced build). Given an .onnx file instead "
         "of a checkpoint, only converts it")


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print everything as JSON")
@click.option("--mobile", is_flag=True, help="also run onnxruntime's mobile usability checker "
              "on an .onnx file (NNAPI, CoreML MLProgram, CoreML NeuralNetwork coverage)")
def inspect_command(model: Path, as_json: bool, mobile: bool) -> None:
    """Describe the ONNX (or .ort) file MODEL: opsets, IR version, inputs and outputs,
    parameters, size, op histogram, share of weights in int8, compress.* metadata, the
    oldest onnxruntime that loads it and, for a `target: mobile` build (or with --mobile), how
    many nodes each mobile EP can run. Works on any ONNX file."""
    import json

    from compress.onnx.inspection import format_inspection, inspect_file

    info = inspect_file(model, mobile=mobile)
    click.echo(json.dumps(info, indent=2, default=str) if as_json else format_inspection(info))


def onnx_input(path: Path) -> bool:
    """Whether `compress export` was given an ONNX model (to convert) rather than a checkpoint."""
    return path.suffix.lower() == ".onnx"


def export_formats(model: Path, out: Path, fmt: str, given: bool = False) -> None:
    """After `compress export` (or instead of it, when the user `given` an .onnx): the edge
    formats asked for."""
    from compress.artifacts import make_folder, remove_empty
    from compress.errors import ConfigError

    if fmt == "onnx":
        if given:
            raise ConfigError(f"compress export: {model} is already an ONNX model; give a "
                              "checkpoint, or --format ort to convert it")
        return
    if not model.is_file():
        raise ConfigError(f"compress export: {model}: ONNX model not found")
    from compress.onnx.inspection import inspect_file
    from compress.onnx.ortformat import convert_to_ort

    info = inspect_file(model)  # refuses what is no ONNX model before a folder is made
    if info["format"] != "onnx":
        raise ConfigError(f"compress export: {model} is not an ONNX file ({info['format']}); "
                          "give the .onnx it was converted from")
    created = make_folder(out)
    try:
        ort_path, config = convert_to_ort(model, out)
    except BaseException:
        remove_empty(created)
        raise
    click.echo(f"wrote {ort_path} and {config}")
    check = _check_against(model, ort_path, info)
    if check:
        click.echo(check)


def _check_against(onnx_path: Path, ort_path: Path, info: dict) -> str:
    """Predictions of the .ort vs the .onnx on the model's own test split, when its metadata
    names the data; '' otherwise."""
    from pydantic import TypeAdapter, ValidationError

    from compress.data import DataConfig, load_dataset
    from compress.errors import CompressError
    from compress.onnx.ortformat import compare_predictions

    spec = info["metadata"].get("compress.data")
    if not isinstance(spec, dict):
        return ""
    try:
        data = load_dataset(TypeAdapter(DataConfig).validate_python(spec))
    except (ValidationError, CompressError):
        return ""
    r = compare_predictions(onnx_path, ort_path, data.x_test, data.y_test)
    return (f"test split: .ort {r['test_accuracy_pct']:.2f} %, .onnx "
            f"{r['onnx_test_accuracy_pct']:.2f} %, identical predictions: "
            f"{r['identical_predictions']} (max |diff| of logits {r['max_abs_diff']:.3g})")
