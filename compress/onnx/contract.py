"""The ONNX artifact contract: export with a dynamic batch axis, the parity check against
PyTorch, and the `metadata_props` every ONNX file carries (how to feed it, what it measured,
what made it). The export, quantize, convert and text stages write through these."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compress import artifacts
from compress.data import portable_spec
from compress.errors import ParityError, StageError
from compress.measure.system import cpu_info, versions

INPUT_NAME, OUTPUT_NAME = "input", "logits"

if TYPE_CHECKING:  # torch when exporting
    import torch


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int,
                external_data: bool = False) -> None:
    """torch.export-based exporter, batch axis dynamic; one self-contained file, or with
    `external_data` the weights in `<path>.data` beside it."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    buf = io.StringIO()
    # The exporter narrates every step on stdout and logs optional-op registration warnings
    # (torchvision absent); none of it is actionable for our models.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                # Positional, not keyed by the forward's argument name: nn.Sequential calls
                # it `input`, user models `x`, `images`... and a dict must match the name.
                opset_version=opset, dynamo=True, dynamic_shapes=({0: batch},),
                external_data=False, verbose=False, report=False,
            )
            program.save(str(path), external_data=external_data)
    except Exception as e:
        raise StageError(f"export failed in torch.onnx ({export_error_summary(e)})") from e


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def export_error_summary(e: Exception, limit: int = 400) -> str:
    """One line for a failed export: torch's own "Exception summary" of the cause where the
    exporter gives one (its first line only says which of its steps failed and lists generic
    next steps), else the error's first line."""
    text = _ANSI.sub("", str(e))
    lines = [ln.strip() for ln in text.splitlines()]
    if "## Exception summary" in lines:
        after = lines[lines.index("## Exception summary") + 1:]
        cause = next((ln for ln in after if ln), "")
        # "<class 'torch._dynamo.exc.UserError'>: message" -> "UserError: message"
        cause = re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>", r"\1", cause)
    else:
        cause = next((ln for ln in lines if ln), "")
    cause = f"{type(e).__name__}: {cause}" if cause else type(e).__name__
    return cause if len(cause) <= limit else cause[: limit - 3] + "..."


def check_parity(torch_out: np.ndarray, ort_out: np.ndarray, atol: float, rtol: float) -> float:
    """Largest |difference|; raises ParityError naming where it is when out of tolerance."""
    diff = np.abs(torch_out - ort_out)
    worst = np.unravel_index(int(diff.argmax()), diff.shape)
    max_diff = float(diff[worst])
    if not np.allclose(ort_out, torch_out, atol=atol, rtol=rtol):
        raise ParityError(
            f"ONNX Runtime output '{OUTPUT_NAME}' differs from PyTorch: max |diff| {max_diff:.3g} "
            f"at sample {worst[0]}, class {worst[1]} (torch {torch_out[worst]:.6g}, ort "
            f"{ort_out[worst]:.6g}); tolerance atol={atol}, rtol={rtol}"
        )
    return max_diff


def set_metadata(path: Path, props: dict[str, object], min_ort: dict | None = None) -> None:
    """Replace the model's `metadata_props` with `props`, stamped with what every artifact states
    (the tool versions, the CPU it was measured on, the oldest onnxruntime that loads it), and
    drop what a consumer does not need: node debug annotations, unused opset imports."""
    import onnx

    import compress
    from compress.onnx.external import external_files
    from compress.onnx.ort_compat import min_onnxruntime_of

    weights = external_files(path)
    model = onnx.load(str(path))  # external weights are read into memory here
    del model.metadata_props[:]
    # ORT's optimizer (quant_pre_process) declares every domain it knows (ai.onnx.ml 5, training,
    # nchwc...): unused, they would only make older runtimes refuse the file.
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    props = {**props, "compress.versions": versions(), "compress.measured_on": cpu_info(),
             "compress.min_onnxruntime": min_ort or min_onnxruntime_of(model)}
    # The exporter annotates every node with torch stack traces and source paths: debugging
    # aids that leak local paths and, for a small student, make up half of the file.
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    model.producer_name, model.producer_version = "compress", compress.__version__
    with artifacts.atomic_path(path) as tmp:
        if not weights:
            onnx.save(model, str(tmp))
            return
        for p in weights:  # onnx appends to an existing weights file: start afresh
            p.unlink()
        onnx.save(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=f"{path.name}.data")


CONTRACT_JSON = "model.json"
CONTRACT_KEYS = {"input": "compress.input", "output": "compress.output",
                 "preprocessing": "compress.preprocessing", "class_labels": "compress.class_labels",
                 "metrics": "compress.metrics", "min_onnxruntime": "compress.min_onnxruntime"}


def write_contract_json(path: Path) -> Path:
    """`model.json` beside the ONNX file: the contract of its `metadata_props` (input, output,
    preprocessing, labels, metrics) for runtimes whose bindings cannot read them
    (onnxruntime-node, -web, -objc), with the model's file name and sha256."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
             .metadata_props}
    contract = {"model": path.name, "model_sha256": artifacts.sha256_file(path)}
    for name, key in CONTRACT_KEYS.items():
        contract[name] = json.loads(props[key]) if key in props else None
    out = path.parent / CONTRACT_JSON
    artifacts.write_json(out, contract)
    return out


def accuracy_entry(metrics: dict, accuracy_pct: float, samples: int) -> dict:
    """`compress.metrics` with this file's own ORT test accuracy under the one name every
    artifact uses (`test_accuracy_pct`), and the number of test samples it was measured on."""
    # A file cannot state its own size (writing it changes it): the manifest has it.
    own = {k: v for k, v in metrics.items() if k != "size_bytes"}
    return {**own, "test_accuracy_pct": accuracy_pct, "test_samples": samples,
            "accuracy_measured_with": "onnxruntime CPU, argmax over the held-out test split"}


def preprocessing_formula(layout: str | None) -> str:
    """The preprocessing in words: per feature for a table (NF), per channel otherwise."""
    along = "per feature f (axis 1 of a table, layout NF)" if layout == "NF" else \
        "per channel c (axis 1)"
    idx = "f" if layout == "NF" else "c"
    return (f"x = ((raw - mean[{idx}]) / std[{idx}]) {along}, computed in float64, then cast "
            "to float32")


def contract_metadata(ckpt: dict, data, metrics: dict, source: dict) -> dict:
    """The `metadata_props` every ONNX artifact carries: how to feed it and what it measured."""
    return {
        "compress.input": {"name": INPUT_NAME, "shape": ["batch", *data.input_shape],
                           "dtype": "float32"},
        "compress.output": {"name": OUTPUT_NAME, "shape": ["batch", data.num_classes],
                            "meaning": "class logits (argmax = prediction)"},
        "compress.preprocessing": {
            **ckpt["preprocessing"],
            "formula": preprocessing_formula(ckpt["preprocessing"].get("layout"))},
        "compress.class_labels": ckpt["class_labels"],
        # The file's name and sha256, not the build machine's absolute path.
        "compress.data": portable_spec(ckpt["data"]),
        "compress.metrics": metrics,
        "compress.source": source,
        "compress.model": portable_model(ckpt["model"]),
    }


def portable_model(model: dict) -> dict:
    """The model spec as shipped: the weights file it started from by name (its sha256 is in the
    checkpoint), not the build machine's absolute path."""
    if not model.get("weights"):
        return model
    return {**model, "weights": Path(model["weights"]).name}
