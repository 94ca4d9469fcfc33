"""Cutting a student out of a teacher encoder, DistilBERT-style: keep a subset of its layers,
keep the feed-forward neurons that matter most, and keep only the vocabulary a corpus uses
(the original ids are remapped inside the model; one outside it to its nearest kept token)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from compress.errors import ConfigError
from compress.text.encoder import SentenceEncoder, tokenize

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def keep_layers(teacher: SentenceEncoder, layers: list[int]) -> SentenceEncoder:
    """A copy of `teacher` with only the transformer layers `layers` (in that order)."""
    n = teacher.bert.config.num_hidden_layers
    bad = [i for i in layers if not 0 <= i < n]
    if bad or not layers:
        raise ConfigError(f"layers {layers}: the teacher has layers 0..{n - 1}; choose a "
                          "non-empty subset of them")
    student = copy.deepcopy(teacher)
    student.bert.encoder.layer = nn.ModuleList(copy.deepcopy(teacher.bert.encoder.layer[i])
                                               for i in layers)
    student.bert.config.num_hidden_layers = len(layers)
    return student


@torch.no_grad()
def ff_importance(enc: SentenceEncoder, ids: np.ndarray, mask: np.ndarray) -> list[torch.Tensor]:
    """Per layer, each feed-forward neuron's mean |activation| over real tokens times the norm of
    its output weights: what the layer loses, on this text, without it."""
    acts: list[torch.Tensor] = []
    real = torch.from_numpy(mask).bool()
    hooks = [layer.intermediate.register_forward_hook(
        lambda _m, _i, out: acts.append(out[real].abs().mean(0)))
        for layer in enc.bert.encoder.layer]
    try:
        enc(torch.from_numpy(ids), torch.from_numpy(mask))
    finally:
        for h in hooks:
            h.remove()
    return [a * layer.output.dense.weight.norm(dim=0)
            for a, layer in zip(acts, enc.bert.encoder.layer, strict=True)]


@torch.no_grad()
def prune_ff(enc: SentenceEncoder, keep: int, importance: list[torch.Tensor]) -> None:
    """Keep the `keep` most important feed-forward neurons of every layer, for real (smaller
    Linear layers), in place."""
    size = enc.bert.config.intermediate_size
    if not 0 < keep <= size:
        raise ConfigError(f"ff_neurons {keep}: must be between 1 and the teacher's {size}")
    for layer, imp in zip(enc.bert.encoder.layer, importance, strict=True):
        idx = torch.sort(torch.topk(imp, keep).indices).values
        fc_in, fc_out = layer.intermediate.dense, layer.output.dense
        new_in = nn.Linear(fc_in.in_features, keep)
        new_in.weight.copy_(fc_in.weight[idx])
        new_in.bias.copy_(fc_in.bias[idx])
        new_out = nn.Linear(keep, fc_out.out_features)
        new_out.weight.copy_(fc_out.weight[:, idx])
        new_out.bias.copy_(fc_out.bias)
        layer.intermediate.dense, layer.output.dense = new_in, new_out
    enc.bert.config.intermediate_size = keep


def special_ids(tok) -> frozenset[int]:
    return frozenset(tok.token_to_id(t) for t in SPECIAL_TOKENS if tok.token_to_id(t) is not None)


def corpus_vocabulary(tok, sentences: list[str]) -> list[int]:
    """Sorted original token ids used by `sentences`, plus the special tokens."""
    ids, _ = tokenize(tok, sentences)
    used = set(np.unique(ids).tolist())
    used |= special_ids(tok)
    return sorted(used)


def nearest_rows(table: torch.Tensor, kept: list[int], candidates: list[int]) -> torch.Tensor:
    """For every row of `table` (original ids), the index in `kept` of the most cosine-similar
    row among `candidates` (a subset of `kept`); kept ids map to themselves."""
    pos = {k: i for i, k in enumerate(kept)}
    out = torch.empty(len(table), dtype=torch.int32)
    cand = torch.tensor(candidates)
    cand_pos = torch.tensor([pos[c] for c in candidates], dtype=torch.int32)
    b = nn.functional.normalize(table[cand].float(), dim=1)
    for i in range(0, len(table), 4096):  # blocks: a 30k x 6k similarity matrix is 0.7 GB
        a = nn.functional.normalize(table[i:i + 4096].float(), dim=1)
        out[i:i + 4096] = cand_pos[(a @ b.T).argmax(1)]
    out[torch.tensor(kept)] = torch.arange(len(kept), dtype=torch.int32)
    return out


@torch.no_grad()
def restrict_vocab(enc: SentenceEncoder, kept: list[int], unk_id: int,
                   unknown: str = "unk", specials: frozenset[int] = frozenset()
                   ) -> SentenceEncoder:
    """A copy of `enc` whose embedding table holds only the rows `kept` (original ids, sorted),
    with a `vocab_map` buffer sending every original id to a row: same inputs as before, same
    outputs for text within the kept vocabulary. An id outside it goes to the kept token whose
    original embedding is the most similar (`unknown="nearest"`, e.g. 'copyright' for a dropped
    '©'; never one of `specials`, the ids of [CLS], [PAD]...) or to [UNK] (`unknown="unk"`).
    The map costs 4 bytes per original id."""
    if enc.original_vocab_size is not None:
        raise ConfigError("the vocabulary of this encoder is already restricted")
    if unk_id not in kept:
        raise ConfigError("the kept vocabulary must include [UNK]")
    old = enc.bert.embeddings.word_embeddings
    out = SentenceEncoder(enc.hf_config() | {"vocab_size": len(kept)}, old.num_embeddings,
                          enc.pooling)
    table = "bert.embeddings.word_embeddings.weight"
    state = {k: v for k, v in enc.state_dict().items() if k != table}
    rows = torch.tensor(kept)
    state[table] = old.weight[rows].clone()
    if unknown == "nearest":
        stand_ins = [i for i in kept if i not in specials and i != unk_id]
        vocab_map = nearest_rows(old.weight, kept, stand_ins)
    else:
        vocab_map = torch.full((old.num_embeddings,), kept.index(unk_id), dtype=torch.int32)
        vocab_map[rows] = torch.arange(len(kept), dtype=torch.int32)
    state["vocab_map"] = vocab_map
    out.load_state_dict(state, strict=True)
    return out.eval()
