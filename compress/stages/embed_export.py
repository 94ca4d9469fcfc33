"""Stage `embed_export`: sentence-encoder checkpoint -> ONNX with dynamic batch and sequence.

Consumes a `pretrained` or `embed_distill` checkpoint; produces `model.onnx` (inputs `input_ids`
and `attention_mask`, int64, batch x sequence, ids of the ORIGINAL tokenizer; output
`sentence_embedding`, batch x hidden, L2-normalised) with the tokenizer files beside it, after
checking that ONNX Runtime agrees with PyTorch on test sentences at several batch sizes and
lengths (else ParityError with the largest difference). With `layernorm: measure` the graph is
also built with its residual LayerNorms kept out of ORT's SkipLayerNormalization fusion
(`compress.text.graph`), both are timed side by side, and the faster one is kept.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from compress import artifacts
from compress.errors import ParityError, StageError
from compress.measure import ort as ort_measure
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.text.corpus import text_corpus
from compress.text.timing import CandidateTiming, time_candidates

INPUTS, OUTPUT = ("input_ids", "attention_mask"), "sentence_embedding"
METRICS = ("parity_max_abs_diff", "parity_samples", "params", "opset", "size_bytes", "layernorm",
           "fused.p50_ms", "unfused.p50_ms")


class EmbedExportConfig(StageConfig, CandidateTiming):
    stage: Literal["embed_export"] = "embed_export"
    input: str = Field(description="id of the stage whose sentence encoder is exported")
    opset: int = Field(18, ge=18, le=23, description="ONNX opset (the exporter needs >= 18)")
    atol: float = Field(1e-4, gt=0, description="parity: absolute tolerance on embeddings")
    parity_samples: int = Field(64, ge=2, description="test sentences compared with PyTorch")
    layernorm: Literal["measure", "fused", "unfused"] = Field(
        "measure", description="fused: the graph as exported (ORT fuses Add + LayerNorm into "
        "SkipLayerNormalization); unfused: each such LayerNorm on a 2-D view, which ORT leaves "
        "alone; measure: both timed at batch 1, the faster kept")

    data_kind = "text"
    references = {"input": {"checkpoint"}}


def export_encoder(model: torch.nn.Module, path: Path, opset: int, max_length: int) -> None:
    """torch.export-based exporter; batch and sequence axes dynamic; one self-contained file."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    seq = torch.export.Dim("sequence", min=2, max=max_length)
    ids = torch.full((2, 8), 101, dtype=torch.int64)
    mask = torch.ones_like(ids)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (ids, mask), input_names=list(INPUTS), output_names=[OUTPUT],
                opset_version=opset, dynamo=True, external_data=False, verbose=False,
                report=False, dynamic_shapes={n: {0: batch, 1: seq} for n in INPUTS})
            program.save(str(path), external_data=False)
    except Exception as e:
        raise StageError(f"export failed in torch.onnx ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:300]})") from e


def parity_inputs(tok, sentences: list[str], max_length: int) -> list[tuple[np.ndarray, ...]]:
    """Feeds of several shapes: one sentence, a padded batch, and a full-length input (test
    sentences run together up to `max_length` tokens), so both axes are shown to be dynamic."""
    from compress.text.encoder import tokenize

    full = tokenize(tok, [" ".join(sentences)])  # truncated to max_length
    return [tokenize(tok, sentences[:1]), tokenize(tok, sentences), full]


def check_parity(model, session, feeds, atol: float) -> float:
    worst = 0.0
    for ids, mask in feeds:
        with torch.no_grad():
            ref = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        diff = float(np.abs(ref - got).max())
        if not diff <= atol:
            raise ParityError(f"ONNX Runtime output '{OUTPUT}' differs from PyTorch: max |diff| "
                              f"{diff:.3g} at input shape {list(ids.shape)}; tolerance {atol}")
        worst = max(worst, diff)
    return worst


def text_contract(hidden: int, max_length: int, ckpt: dict, metrics: dict, source: dict) -> dict:
    """The `metadata_props` of an exported sentence encoder: how to feed it, what it returns."""
    ids = {"shape": ["batch", "sequence"], "dtype": "int64"}
    return {
        "compress.input": {"name": list(INPUTS), "input_ids": ids, "attention_mask": ids},
        "compress.output": {"name": OUTPUT, "shape": ["batch", hidden],
                            "meaning": "mean-pooled, L2-normalised sentence embedding"},
        "compress.preprocessing": {"tokenizer": "tokenizer.json (beside the model)",
                                   "max_length": max_length, "truncation": True,
                                   "padding": "to the longest in the batch, [PAD] = 0"},
        "compress.data": ckpt.get("data"),
        "compress.metrics": metrics,
        "compress.source": source,
        "compress.model": {"hf_config": ckpt["hf_config"],
                           "layers_from_teacher": ckpt.get("layers_from_teacher"),
                           "source_model": ckpt.get("source_model")},
    }


def choose_layernorm(cfg: EmbedExportConfig, path: Path, tok, sentences: list[str]) -> dict:
    """Apply `cfg.layernorm` to the model at `path` (rewritten in place when the unfused graph is
    kept); returns the choice and, when measured, both p50 latencies."""
    import onnx

    from compress.text.graph import unfuse_skip_layernorm

    if cfg.layernorm == "fused":
        return {"layernorm": "fused"}
    candidate = path.with_name("unfused.onnx")
    model = onnx.load(str(path))
    if unfuse_skip_layernorm(model) == 0:
        return {"layernorm": "fused"}  # nothing ORT would fuse
    onnx.save(model, str(candidate))
    del model
    if cfg.layernorm == "unfused":
        shutil.move(candidate, path)
        return {"layernorm": "unfused"}
    sessions = {"fused": ort_measure.make_session(path, threads=cfg.threads),
                "unfused": ort_measure.make_session(candidate, threads=cfg.threads)}
    lat, _ = time_candidates(sessions, tok, sentences, cfg)
    del sessions
    chosen = min(lat, key=lambda k: lat[k].p50_ms)
    if chosen == "unfused":
        shutil.move(candidate, path)
    else:
        candidate.unlink()
    return {"layernorm": chosen, **{f"{k}.p50_ms": v.p50_ms for k, v in lat.items()}}


@register_stage(EmbedExportConfig, produces="onnx", metrics=lambda cfg: METRICS)
def embed_export(cfg: EmbedExportConfig, ctx: StageContext) -> StageResult:
    import onnx

    from compress.onnx.contract import set_metadata
    from compress.text.encoder import copy_tokenizer, encoder_from_checkpoint, load_tokenizer

    src = ctx.inputs[cfg.input]
    ckpt = artifacts.load_checkpoint(src.path)
    model = encoder_from_checkpoint(ckpt, src.path)
    max_length = ckpt.get("max_length", 128)
    copy_tokenizer(src.path.parent, ctx.out_dir)
    tok = load_tokenizer(ctx.out_dir, max_length)
    out = ctx.out_dir / "model.onnx"
    export_encoder(model, out, cfg.opset, max_length)
    try:
        onnx.checker.check_model(str(out), full_check=True)
    except onnx.checker.ValidationError as e:
        raise StageError(f"exported model fails onnx.checker: {str(e).splitlines()[0]}") from e
    corpus = text_corpus(ctx)
    layernorm = choose_layernorm(cfg, out, tok, corpus.val)
    session = ort_measure.make_session(out, threads=0)
    sentences = corpus.test[: cfg.parity_samples]
    max_diff = check_parity(model, session, parity_inputs(tok, sentences, max_length), cfg.atol)
    del session
    metrics = {"parity_max_abs_diff": max_diff, "parity_samples": len(sentences),
               "params": sum(p.numel() for p in model.parameters()), "opset": cfg.opset,
               **layernorm}
    set_metadata(out, text_contract(model.bert.config.hidden_size, max_length, ckpt, metrics, {
        "pipeline": ctx.pipeline, "stage": ctx.stage_id, "from_stage": src.stage_id,
        "checkpoint_sha256": src.sha256}))
    metrics["size_bytes"] = out.stat().st_size
    return StageResult(primary="model.onnx", metrics=metrics)
