"""Stage `embed_distill`: a smaller sentence encoder cut from a pretrained one and trained to
reproduce its embeddings.

Consumes a `pretrained` checkpoint (and its precomputed embeddings); produces `model.pt`: a
student that keeps a subset of the teacher's layers (DistilBERT-style initialisation), the most
important feed-forward neurons, and only the vocabulary of the training sentences (remapped
inside the model), trained on cosine + MSE to the teacher's normalised embeddings (optionally
also on every token's last hidden state).
"""

from __future__ import annotations

import copy
import time
from typing import Literal

import numpy as np
from pydantic import Field

from compress import artifacts
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.stages.text import text_corpus
from compress.text.corpus import teacher_embeddings

METRICS = ("initial_val_cosine", "val_cosine", "test_cosine", "params", "vocab_size", "layers",
           "ff_neurons", "best_epoch", "train_s")


class EmbedDistillConfig(StageConfig):
    stage: Literal["embed_distill"] = "embed_distill"
    teacher: str = Field(description="id of the `pretrained` stage the student learns from")
    layers: list[int] = Field([0, 5], min_length=1,
                              description="teacher layers the student starts from, in order")
    ff_neurons: int | None = Field(None, ge=1,
                                   description="feed-forward neurons kept per layer; None = all")
    vocab: Literal["corpus", "full"] = Field(
        "corpus", description="corpus: keep only the train sentences' tokens (+ specials)")
    unknown_tokens: Literal["nearest", "unk"] = Field(
        "nearest", description="vocab corpus: a token outside it is read as the kept token with "
        "the most similar teacher embedding (nearest) or as [UNK] (unk)")
    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=4096)
    lr: float = Field(1e-4, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    cosine_weight: float = Field(1.0, ge=0, description="weight of (1 - cosine) in the loss")
    mse_weight: float = Field(1.0, ge=0, description="weight of the embeddings' MSE x hidden")
    freeze_embeddings: bool = Field(
        True, description="keep the teacher's token/position embeddings as they are (fewer "
        "weights to fit on a small corpus, and a much cheaper optimizer step)")
    token_weight: float = Field(
        0.0, ge=0, description="weight of the per-token last-hidden-state MSE (relative to the "
        "teacher's mean square): a target per token rather than per sentence; 0 = off")
    primary_repeats: int = Field(
        1, ge=1, le=100, description="times per epoch each train sentence of the pipeline's own "
        "corpus is seen (extra_train sentences once): weights the domain val and test come from")
    importance_sentences: int = Field(256, ge=1, description="train sentences that rank neurons")
    seed: int = Field(0, ge=0)

    data_kind = "text"
    references = {"teacher": {"checkpoint"}}


@register_stage(EmbedDistillConfig, produces="checkpoint", metrics=lambda cfg: METRICS)
def embed_distill(cfg: EmbedDistillConfig, ctx: StageContext) -> StageResult:
    import torch

    from compress.text.distillation import (
        epoch_pool,
        fit_batches,
        length_grouped_batches,
        make_optimizer,
        make_student,
        token_states,
    )
    from compress.text.encoder import (
        checkpoint_payload,
        copy_tokenizer,
        embed,
        encoder_from_checkpoint,
        load_tokenizer,
    )
    from compress.text.metrics import mean_cosine

    src = ctx.inputs[cfg.teacher]
    ckpt = artifacts.load_checkpoint(src.path)
    teacher = encoder_from_checkpoint(ckpt, src.path)
    targets = teacher_embeddings(src.path)
    corpus = text_corpus(ctx)
    copy_tokenizer(src.path.parent, ctx.out_dir)
    tok = load_tokenizer(ctx.out_dir, ckpt.get("max_length", 128))

    torch.manual_seed(cfg.seed)
    student = make_student(teacher, tok, cfg, corpus.train)
    tokens = token_states(teacher, tok, corpus.train) if cfg.token_weight > 0 else []
    scale = float(torch.cat(tokens).float().pow(2).mean()) if tokens else 1.0
    del teacher
    if cfg.freeze_embeddings:
        student.bert.embeddings.requires_grad_(False)
    pool = epoch_pool(len(corpus.train), corpus.primary_train, cfg.primary_repeats)
    opt, sched = make_optimizer(student, cfg, cfg.epochs * -(-len(pool) // cfg.batch_size))
    rng = np.random.default_rng(cfg.seed)
    y_train = torch.from_numpy(targets["train"])
    lengths = np.array([len(corpus.train[j]) for j in pool])
    student.eval()
    initial = mean_cosine(embed(student, tok, corpus.val), targets["val"])  # what the cut lost
    best = (initial, 0, copy.deepcopy(student.state_dict()))
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        batches = [pool[b] for b in length_grouped_batches(lengths, cfg.batch_size, rng)]
        loss = fit_batches(student, opt, sched, batches, tok, corpus.train, y_train, cfg,
                           tokens, scale)
        student.eval()
        val = mean_cosine(embed(student, tok, corpus.val), targets["val"])
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(student.state_dict()))
        if ctx.progress:
            print(f"[{ctx.stage_id}] epoch {epoch}/{cfg.epochs}: loss {loss.item():.4f}, "
                  f"val cosine {val:.4f} (from {initial:.4f}), "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    train_s = time.perf_counter() - t0
    student.load_state_dict(best[2])
    c = student.bert.config
    metrics = {
        "initial_val_cosine": initial, "val_cosine": best[0],
        "test_cosine": mean_cosine(embed(student, tok, corpus.test), targets["test"]),
        "params": sum(p.numel() for p in student.parameters()), "vocab_size": c.vocab_size,
        "layers": c.num_hidden_layers, "ff_neurons": c.intermediate_size,
        "best_epoch": best[1], "train_s": round(train_s, 2),
    }
    artifacts.save_checkpoint(ctx.out_dir / "model.pt", checkpoint_payload(
        student, max_length=ckpt.get("max_length", 128), source_model=ckpt.get("source_model"),
        layers_from_teacher=list(cfg.layers), data=ctx.data_cfg.model_dump(mode="json"),
        config=cfg.model_dump(mode="json"), metrics=metrics))
    return StageResult(primary="model.pt", metrics=metrics)
