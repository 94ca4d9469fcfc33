"""Stage `pretrained`: start a text pipeline from a pretrained sentence encoder (offline).

Consumes nothing but the text data; produces `model.pt` (HF config dict + state dict), the
tokenizer files beside it, and `embeddings.npz`: the encoder's embeddings of every train, val
and test sentence, computed once for the students that learn from it and the metrics.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from compress import artifacts
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.text.corpus import EMBEDDINGS, text_corpus

METRICS = ("params", "layers", "hidden", "vocab_size", "train_sentences", "val_sentences",
           "test_sentences", "embed_s")


class PretrainedConfig(StageConfig):
    stage: Literal["pretrained"] = "pretrained"
    data_kind = "text"
    model: str = Field("all-minilm-l6-v2",
                       description="a packaged model name or a folder with an HF BERT encoder")
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

    corpus = text_corpus(ctx)
    folder = packaged_model_dir(cfg.model)
    enc = load_pretrained(folder)
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
    }
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", checkpoint_payload(
        enc, max_length=cfg.max_length, source_model=cfg.model, layers_from_teacher=None,
        data=ctx.data_cfg.model_dump(mode="json"), config=cfg.model_dump(mode="json"),
        metrics=metrics))
    return StageResult(primary="model.pt", metrics=metrics)
