"""Training engine of stage `embed_distill`: the student cut from the teacher (layer subset,
pruned feed-forward, kept vocabulary), length-grouped batches, and the loss on the teacher's
sentence embeddings (cosine + MSE, optionally per-token states). `cfg` is the stage's config."""

from __future__ import annotations

import numpy as np
import torch


def _loss(student: torch.Tensor, teacher: torch.Tensor, cfg) -> torch.Tensor:
    cos = torch.nn.functional.cosine_similarity(student, teacher, dim=-1).mean()
    # Summed over the hidden axis, so the MSE is on the same scale as the cosine term.
    mse = ((student - teacher) ** 2).sum(-1).mean()
    return cfg.cosine_weight * (1 - cos) + cfg.mse_weight * mse


@torch.no_grad()
def token_states(teacher, tok, sentences: list[str], batch: int = 64) -> list[torch.Tensor]:
    """The teacher's last hidden state of every real token of every sentence (fp16, computed
    once): the student is taught each token's output, not only their mean."""
    from compress.text.encoder import tokenize

    out: list[torch.Tensor] = [torch.empty(0)] * len(sentences)
    order = np.argsort([len(s) for s in sentences], kind="stable")
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        ids, mask = tokenize(tok, [sentences[j] for j in idx])
        h, _ = teacher.tokens_and_embedding(torch.from_numpy(ids), torch.from_numpy(mask))
        for row, j in enumerate(idx):
            out[j] = h[row, : int(mask[row].sum())].half()
    return out


def _token_loss(h: torch.Tensor, targets: list[torch.Tensor], mask: torch.Tensor,
                scale: float) -> torch.Tensor:
    t = torch.zeros_like(h)
    for row, target in enumerate(targets):
        t[row, : len(target)] = target.float()
    m = mask.unsqueeze(-1).to(h.dtype)
    return (((h - t) ** 2) * m).sum() / (m.sum() * h.shape[-1] * scale)


def length_grouped_batches(lengths: np.ndarray, batch: int, rng) -> list[np.ndarray]:
    """Shuffled batches of sentences of similar length: a random permutation cut into groups of
    32 batches, each sorted by length, then the batches shuffled. Much less padding to compute
    than purely random batches, nearly as random."""
    order = rng.permutation(len(lengths))
    group = 32 * batch
    batches = []
    for g in range(0, len(order), group):
        chunk = order[g:g + group]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_pool(n_train: int, primary: int | None, repeats: int) -> np.ndarray:
    """Indices of the train sentences one epoch visits: the first `primary` (the corpus's own)
    `repeats` times, the rest once."""
    primary = n_train if primary is None else min(primary, n_train)
    return np.concatenate([np.tile(np.arange(primary), repeats), np.arange(primary, n_train)])


def make_optimizer(student, cfg, steps: int):
    """AdamW on the trainable weights; linear warm-up over 5 % of `steps`, then linear decay."""
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup + 1))))
    return opt, sched


def fit_batches(student, opt, sched, batches, tok, sentences: list[str], targets: torch.Tensor,
                cfg, tokens=(), scale: float = 1.0) -> torch.Tensor:
    """One optimizer step per batch of sentence indices (into `sentences` and `targets`, the
    teacher's embeddings); `tokens`: the teacher's per-token states, if the loss uses them.
    Returns the last loss."""
    from compress.text.encoder import tokenize

    student.train()
    loss = torch.zeros(())
    for idx in batches:
        ids, mask = (torch.from_numpy(a) for a in tokenize(tok, [sentences[j] for j in idx]))
        h, emb = student.tokens_and_embedding(ids, mask)
        loss = _loss(emb, targets[idx], cfg)
        if tokens:
            loss = loss + cfg.token_weight * _token_loss(h, [tokens[j] for j in idx], mask, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return loss


def make_student(teacher, tok, cfg, train: list[str]):
    """The untrained student: layer subset, then pruned feed-forward, then the kept vocabulary."""
    from compress.text.encoder import tokenize
    from compress.text.shrink import (
        corpus_vocabulary,
        ff_importance,
        keep_layers,
        prune_ff,
        restrict_vocab,
        special_ids,
    )

    student = keep_layers(teacher, cfg.layers)
    if cfg.ff_neurons is not None:
        ids, mask = tokenize(tok, train[: cfg.importance_sentences])
        prune_ff(student, cfg.ff_neurons, ff_importance(student, ids, mask))
    if cfg.vocab == "corpus":
        student = restrict_vocab(student, corpus_vocabulary(tok, train), tok.token_to_id("[UNK]"),
                                 cfg.unknown_tokens, special_ids(tok))
    return student
