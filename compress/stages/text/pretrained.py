"""Stage `pretrained`: start a text pipeline from a pretrained sentence encoder (offline): the
packaged all-MiniLM-L6-v2 or the user's own BERT-family encoder (`model_dir:`, a local Hugging
Face folder) with the pooling it was trained with.

Consumes nothing but the text data; produces `model.pt` (HF config dict + state dict), the
tokenizer files beside it, and `embeddings.npz`: the encoder's embeddings of every train, val
and test sentence, computed once for the students that learn from it and the metrics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from compress import artifacts
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.stages.text import text_corpus
from compress.text.corpus import EMBEDDINGS

METRICS = ("params", "layers", "hidden", "vocab_size", "train_sentences", "val_sentences",
           "test_sentences", "embed_s", "pooling", "pooling_from")


class PretrainedConfig(StageConfig):
    stage: Literal["pretrained"] = "pretrained"
    data_kind = "text"
    model: str = Field("all-minilm-l6-v2",
                       description="a packaged model name or a folder with an HF BERT encoder")
    model_dir: str | None = Field(
        None, description="your own encoder: a local Hugging Face folder of a BERT-family model "
        "(config.json, model.safetensors, tokenizer.json); used instead of `model`")
    pooling: Literal["auto", "mean", "cls"] = Field(
        "auto", description="how token states become the sentence embedding; auto: as "
        "sentence-transformers' Pooling config in the folder says, else mean")
    max_length: int = Field(128, ge=8, le=512, description="tokens per sentence (truncated)")
    batch_size: int = Field(64, ge=1, le=4096, description="sentences per embedding batch")



@register_stage(PretrainedConfig, produces="checkpoint", metrics=lambda cfg: METRICS)
def pretrained(cfg: PretrainedConfig, ctx: StageContext) -> StageResult:
    from compress.text.encoder import (
        checkpoint_payload,
        copy_tokenizer,
        embed,
        load_pretrained,
        load_tokenizer,
        packaged_model_dir,
    )
    from compress.text.model_dir import check_model_dir, trained_pooling

    folder = Path(cfg.model_dir) if cfg.model_dir else packaged_model_dir(cfg.model)
    check_model_dir(folder)
    pooling, pooling_from = ((cfg.pooling, "pooling: in the pipeline") if cfg.pooling != "auto"
                             else trained_pooling(folder))
    corpus = text_corpus(ctx)
    enc = load_pretrained(folder, pooling)
    copy_tokenizer(folder, ctx.out_dir)
    tok = load_tokenizer(ctx.out_dir, cfg.max_length)
    t0 = time.perf_counter()
    emb = {split: embed(enc, tok, getattr(corpus, split), cfg.batch_size)
           for split in ("train", "val", "test")}
    embed_s = time.perf_counter() - t0
    with artifacts.atomic_path(ctx.out_dir / EMBEDDINGS) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **emb)
    c = enc.bert.config
    metrics = {
        "params": sum(p.numel() for p in enc.parameters()), "layers": c.num_hidden_layers,
        "hidden": c.hidden_size, "vocab_size": c.vocab_size,
        "train_sentences": len(corpus.train), "val_sentences": len(corpus.val),
        "test_sentences": len(corpus.test), "embed_s": round(embed_s, 2),
        "pooling": pooling, "pooling_from": pooling_from,
    }
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", checkpoint_payload(
        enc, max_length=cfg.max_length, source_model=cfg.model_dir or cfg.model,
        layers_from_teacher=None,
        data=ctx.data_cfg.model_dump(mode="json"), config=cfg.model_dump(mode="json"),
        metrics=metrics))
    return StageResult(primary="model.pt", metrics=metrics)
