"""Stage `embed_export`: sentence-encoder checkpoint -> ONNX with dynamic batch and sequence.

Consumes a `pretrained` or `embed_distill` checkpoint; produces `model.onnx` (inputs `input_ids`
and `attention_mask`, int64, batch x sequence, ids of the ORIGINAL tokenizer; output
`sentence_embedding`, batch x hidden, L2-normalised) with the tokenizer files beside it, after
checking that ONNX Runtime agrees with PyTorch on test sentences at several batch sizes and
lengths (else ParityError with the largest difference). With `layernorm: measure` the graph is
also built with its residual LayerNorms kept out of ORT's SkipLayerNormalization fusion
(`compress.text.graph`) and as ORT's transformer optimizer fuses it (`compress.text.fusion`);
all are timed side by side, the fastest is shipped and all stay under `candidates/`, each
parity-checked, for `embed_quantize` to choose from again after int8.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from compress import artifacts
from compress.errors import ParityError, StageError
from compress.measure import ort as ort_measure
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.stages.text import text_corpus
from compress.text.export import INPUTS, OUTPUT, export_encoder
from compress.text.fusion import TORCHSCRIPT_OPSET
from compress.text.timing import CandidateTiming, time_candidates

if TYPE_CHECKING:  # torch is imported when a stage runs, not when the command line starts
    pass

METRICS = ("parity_max_abs_diff", "parity_samples", "params", "opset", "size_bytes", "layernorm",
           "fused.p50_ms", "unfused.p50_ms", "ort_fused.p50_ms", "ort_fused.ops")


class EmbedExportConfig(StageConfig, CandidateTiming):
    stage: Literal["embed_export"] = "embed_export"
    input: str = Field(description="id of the stage whose sentence encoder is exported")
    opset: int = Field(18, ge=18, le=23, description="ONNX opset (the exporter needs >= 18)")
    atol: float = Field(1e-4, gt=0, description="parity: absolute tolerance on embeddings")
    parity_samples: int = Field(64, ge=2, description="test sentences compared with PyTorch")
    layernorm: Literal["measure", "fused", "unfused", "ort_fused"] = Field(
        "measure", description="fused: the graph as exported (ORT fuses Add + LayerNorm into "
        "SkipLayerNormalization); unfused: each such LayerNorm on a 2-D view, which ORT leaves "
        "alone; ort_fused: ORT's transformer optimizer (BERT fusions) on a TorchScript export, "
        "as optimum builds it; measure: the candidates timed at batch 1, the fastest kept "
        "(all kept under candidates/ for embed_quantize)")
    ort_fusion: bool = Field(True, description="measure: ort_fused is one of the candidates")

    data_kind = "text"
    references = {"input": {"checkpoint"}}


def parity_inputs(tok, sentences: list[str], max_length: int) -> list[tuple[np.ndarray, ...]]:
    """Feeds of several shapes: one sentence, a padded batch, and a full-length input (test
    sentences run together up to `max_length` tokens), so both axes are shown to be dynamic."""
    from compress.text.encoder import tokenize

    full = tokenize(tok, [" ".join(sentences)])  # truncated to max_length
    return [tokenize(tok, sentences[:1]), tokenize(tok, sentences), full]


def check_parity(model, session, feeds, atol: float) -> float:
    import torch

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
                            "meaning": f"{ckpt.get('pooling', 'mean')}-pooled, L2-normalised "
                                       "sentence embedding"},
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


def build_candidates(cfg: EmbedExportConfig, model, out: Path, max_length: int) -> dict:
    """The float graphs `cfg.layernorm` asks for, written under `out.parent / "candidates"`:
    name -> (path, notes). `fused`: our export as is; `unfused`: its residual LayerNorms kept
    out of SkipLayerNormalization (`compress.text.graph`); `ort_fused`: ORT's transformer
    optimizer on a TorchScript export (`compress.text.fusion`)."""
    import onnx

    from compress.text.fusion import fused_ops_text, ort_fused_export
    from compress.text.graph import unfuse_skip_layernorm

    folder = out.parent / "candidates"
    folder.mkdir()
    found: dict[str, tuple[Path, dict]] = {}
    if cfg.layernorm != "ort_fused":
        path = folder / "fused.onnx"
        export_encoder(model, path, cfg.opset, max_length)
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except onnx.checker.ValidationError as e:
            raise StageError(f"exported model fails onnx.checker: {str(e).splitlines()[0]}") from e
        found["fused"] = (path, {})
        if cfg.layernorm in ("measure", "unfused"):
            graph = onnx.load(str(path))
            if unfuse_skip_layernorm(graph):  # 0: nothing ORT would fuse, no second graph
                onnx.save(graph, str(folder / "unfused.onnx"))
                found["unfused"] = (folder / "unfused.onnx", {})
            del graph
    if cfg.layernorm == "ort_fused" or (cfg.layernorm == "measure" and cfg.ort_fusion):
        counts = ort_fused_export(model, folder / "ort_fused.onnx", INPUTS, OUTPUT)
        found["ort_fused"] = (folder / "ort_fused.onnx", {"ort_fused.ops": fused_ops_text(counts)})
    return found


def choose_graph(cfg: EmbedExportConfig, candidates: dict, tok, sentences: list[str]) -> dict:
    """The candidate to ship: the one `cfg.layernorm` names, or with `measure` the fastest at
    batch 1 (all timed side by side). Returns the choice and, when measured, each p50."""
    wanted = None if cfg.layernorm == "measure" else cfg.layernorm
    if wanted is not None or len(candidates) == 1:
        return {"layernorm": wanted if wanted in candidates else next(iter(candidates))}
    sessions = {k: ort_measure.make_session(p, threads=cfg.threads)
                for k, (p, _) in candidates.items()}
    lat, _ = time_candidates(sessions, tok, sentences, cfg)
    del sessions
    chosen = min(lat, key=lambda k: lat[k].p50_ms)
    return {"layernorm": chosen, **{f"{k}.p50_ms": v.p50_ms for k, v in lat.items()}}


@register_stage(EmbedExportConfig, produces="onnx", metrics=lambda cfg: METRICS)
def embed_export(cfg: EmbedExportConfig, ctx: StageContext) -> StageResult:
    from compress.onnx.contract import set_metadata
    from compress.text.encoder import copy_tokenizer, encoder_from_checkpoint, load_tokenizer

    src = ctx.inputs[cfg.input]
    ckpt = artifacts.load_checkpoint(src.path)
    model = encoder_from_checkpoint(ckpt, src.path)
    max_length = ckpt.get("max_length", 128)
    copy_tokenizer(src.path.parent, ctx.out_dir)
    tok = load_tokenizer(ctx.out_dir, max_length)
    out = ctx.out_dir / "model.onnx"
    candidates = build_candidates(cfg, model, out, max_length)
    corpus = text_corpus(ctx)
    choice = choose_graph(cfg, candidates, tok, corpus.val)
    sentences = corpus.test[: cfg.parity_samples]
    feeds = parity_inputs(tok, sentences, max_length)
    max_diff = 0.0
    for path, _ in candidates.values():  # embed_quantize may take any of them
        session = ort_measure.make_session(path, threads=0)
        max_diff = max(max_diff, check_parity(model, session, feeds, cfg.atol))
        del session
    shutil.copyfile(candidates[choice["layernorm"]][0], out)
    if cfg.layernorm != "measure":  # nothing was chosen between: no other graph to offer
        shutil.rmtree(out.parent / "candidates")
    notes = {k: v for _, extra in candidates.values() for k, v in extra.items()}
    metrics = {"parity_max_abs_diff": max_diff, "parity_samples": len(sentences),
               "params": sum(p.numel() for p in model.parameters()),
               "opset": TORCHSCRIPT_OPSET if choice["layernorm"] == "ort_fused" else cfg.opset,
               **choice, **notes}
    set_metadata(out, text_contract(model.bert.config.hidden_size, max_length, ckpt, metrics, {
        "pipeline": ctx.pipeline, "stage": ctx.stage_id, "from_stage": src.stage_id,
        "checkpoint_sha256": src.sha256}))
    metrics["size_bytes"] = out.stat().st_size
    return StageResult(primary="model.onnx", metrics=metrics)
