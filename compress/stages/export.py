"""Stage `export`: checkpoint -> ONNX (pinned opset, dynamic batch), checked, with parity.

Consumes a checkpoint; produces `model.onnx` whose outputs match PyTorch's on test inputs within
the stated tolerance (else ParityError with the largest difference), whose test accuracy was
measured in ONNX Runtime, and whose `metadata_props` describe its contract.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from compress import artifacts
from compress.errors import ArtifactError, ParityError, StageError
from compress.measure import ort as ort_measure
from compress.measure.system import cpu_info, versions
from compress.models import build_model, count_params
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage

INPUT_NAME, OUTPUT_NAME = "input", "logits"
METRICS = ("ort_test_accuracy_pct", "torch_test_accuracy_pct", "parity_max_abs_diff",
           "parity_samples", "params", "opset", "size_bytes")


class ExportConfig(StageConfig):
    stage: Literal["export"] = "export"
    input: str = Field(description="id of the stage whose checkpoint is exported")
    opset: int = Field(18, ge=18, le=23, description="ONNX opset (the exporter needs >= 18)")
    atol: float = Field(1e-4, gt=0, description="parity: absolute tolerance on logits")
    rtol: float = Field(1e-3, ge=0, description="parity: relative tolerance on logits")
    parity_samples: int = Field(512, ge=1, description="test samples compared with PyTorch")

    references = {"input": {"checkpoint"}}


def model_from_checkpoint(ckpt: dict, path: Path) -> torch.nn.Module:
    try:
        model = build_model(ckpt["model"], ckpt["input_shape"], ckpt["num_classes"])
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, RuntimeError, ValueError) as e:
        raise ArtifactError(
            f"{path}: checkpoint does not rebuild ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}); rerun the stage that made it"
        ) from e
    return model.eval()


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    """torch.export-based exporter, batch axis dynamic, one self-contained file."""
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
                opset_version=opset, dynamo=True, dynamic_shapes={"x": {0: batch}},
                external_data=False, verbose=False, report=False,
            )
            program.save(str(path), external_data=False)
    except Exception as e:
        raise StageError(
            f"export failed in torch.onnx ({type(e).__name__}: {str(e).splitlines()[0][:300]})"
        ) from e


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
    from compress.ort_compat import min_onnxruntime_of

    model = onnx.load(str(path))
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
        onnx.save(model, str(tmp))


def source_of(ctx: StageContext, src, **extra) -> dict:
    """`compress.source`: the pipeline, stage and cache key (the runner's content hash of the
    stage's config, inputs, data and code) that made the file, and what it was made from."""
    return {"pipeline": ctx.pipeline, "stage": ctx.stage_id, "cache_key": ctx.cache_key,
            "from_stage": src.stage_id, **extra}


def accuracy_entry(metrics: dict, accuracy_pct: float, samples: int) -> dict:
    """`compress.metrics` with this file's own ORT test accuracy under the one name every
    artifact uses (`test_accuracy_pct`), and the number of test samples it was measured on."""
    # A file cannot state its own size (writing it changes it): the manifest has it.
    own = {k: v for k, v in metrics.items() if k != "size_bytes"}
    return {**own, "test_accuracy_pct": accuracy_pct, "test_samples": samples,
            "accuracy_measured_with": "onnxruntime CPU, argmax over the held-out test split"}


def contract_metadata(ckpt: dict, data, metrics: dict, source: dict) -> dict:
    """The `metadata_props` every ONNX artifact carries: how to feed it and what it measured."""
    return {
        "compress.input": {"name": INPUT_NAME, "shape": ["batch", *data.input_shape],
                           "dtype": "float32"},
        "compress.output": {"name": OUTPUT_NAME, "shape": ["batch", data.num_classes],
                            "meaning": "class logits (argmax = prediction)"},
        "compress.preprocessing": {
            **ckpt["preprocessing"],
            "formula": "x = ((raw - mean[c]) / std[c]) per channel c (axis 1), computed in "
                       "float64, then cast to float32"},
        "compress.class_labels": ckpt["class_labels"],
        "compress.data": ckpt["data"],
        "compress.metrics": metrics,
        "compress.source": source,
        "compress.model": ckpt["model"],
    }


@register_stage(ExportConfig, produces="onnx", metrics=lambda cfg: METRICS)
def export(cfg: ExportConfig, ctx: StageContext) -> StageResult:
    import onnx

    src = ctx.inputs[cfg.input]
    ckpt = artifacts.load_checkpoint(src.path)
    model = model_from_checkpoint(ckpt, src.path)
    data = ctx.dataset()
    if list(data.input_shape) != list(ckpt["input_shape"]):
        raise StageError(
            f"checkpoint {src.path} expects inputs {ckpt['input_shape']} but the data gives "
            f"{data.input_shape}; export it with the data it was trained on"
        )
    out = ctx.out_dir / "model.onnx"
    export_onnx(model, torch.as_tensor(data.x_test[:2]), out, cfg.opset)
    try:
        onnx.checker.check_model(str(out), full_check=True)
    except onnx.checker.ValidationError as e:
        raise StageError(f"exported model fails onnx.checker: {str(e).splitlines()[0]}") from e

    session = ort_measure.make_session(out, threads=0)
    x_par = data.x_test[: cfg.parity_samples]
    with torch.no_grad():
        torch_logits = model(torch.as_tensor(x_par)).numpy()
    max_diff = check_parity(torch_logits, ort_measure.predict(session, x_par), cfg.atol, cfg.rtol)
    # The batch axis must really be dynamic: batch 1 must agree too.
    check_parity(torch_logits[:1], session.run(None, {INPUT_NAME: x_par[:1]})[0], cfg.atol,
                 cfg.rtol)

    with torch.no_grad():
        torch_acc = ort_measure.accuracy_pct(model(torch.as_tensor(data.x_test)).numpy(),
                                             data.y_test)
    ort_acc = ort_measure.accuracy_pct(ort_measure.predict(session, data.x_test), data.y_test)
    del session
    metrics = {
        "ort_test_accuracy_pct": ort_acc,
        "torch_test_accuracy_pct": torch_acc,
        "parity_max_abs_diff": max_diff,
        "parity_samples": len(x_par),
        "params": count_params(model),
        "opset": cfg.opset,
    }
    set_metadata(out, contract_metadata(
        ckpt, data, accuracy_entry(metrics, ort_acc, len(data.y_test)),
        source_of(ctx, src, checkpoint_sha256=src.sha256)))
    metrics["size_bytes"] = out.stat().st_size
    return StageResult(primary="model.onnx", metrics=metrics)
