"""compress.text: the encoder matches its Hugging Face model, students are cut from the teacher
exactly, the vocabulary remap changes nothing for known text, and the metrics' maths."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

from compress.errors import ConfigError
from compress.text import require_transformers
from compress.text.encoder import (
    checkpoint_payload,
    embed,
    encoder_from_checkpoint,
    load_pretrained,
    load_tokenizer,
    tokenize,
)
from compress.text.metrics import mean_cosine, neighbour_recall, top_k_neighbours, top_k_overlap
from compress.text.shrink import (
    corpus_vocabulary,
    ff_importance,
    keep_layers,
    prune_ff,
    restrict_vocab,
    special_ids,
)

TEXT = ["The quick brown fox jumps over the lazy dog.", "Lists are mutable sequences.",
        "A generator yields values one at a time, lazily."]


@pytest.fixture(scope="module")
def teacher(tiny_bert_dir):
    return load_pretrained(tiny_bert_dir)


@pytest.fixture(scope="module")
def tok(tiny_bert_dir):
    return load_tokenizer(tiny_bert_dir)


def test_encoder_is_mean_pooled_normalised_hf_output(teacher, tok, tiny_bert_dir):
    import transformers

    # setup
    hf = transformers.AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    ids, mask = tokenize(tok, TEXT)
    # execute
    ours = embed(teacher, tok, TEXT)
    with torch.no_grad():
        h = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))[0]
    m = torch.from_numpy(mask).unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    # assert
    assert ids[0, 0] == tok.token_to_id("[CLS]") and mask[1].sum() < mask.shape[1]
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_checkpoint_rebuilds_from_config_and_state_dict(teacher, tok, tmp_path):
    from compress import artifacts

    # execute
    artifacts.save_checkpoint(tmp_path / "m.pt", checkpoint_payload(teacher))
    ckpt = artifacts.load_checkpoint(tmp_path / "m.pt")  # weights_only: no code unpickled
    again = encoder_from_checkpoint(ckpt, tmp_path / "m.pt")
    # assert
    np.testing.assert_array_equal(embed(again, tok, TEXT), embed(teacher, tok, TEXT))


def test_layer_subset_copies_the_teacher_layers(teacher):
    # execute
    student = keep_layers(teacher, [0, 2])
    # assert
    assert student.bert.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    for j, i in enumerate([0, 2]):
        for (k, a), (_, b) in zip(student.bert.encoder.layer[j].state_dict().items(),
                                  teacher.bert.encoder.layer[i].state_dict().items(), strict=True):
            assert torch.equal(a, b), k
    assert torch.equal(student.bert.embeddings.word_embeddings.weight,
                       teacher.bert.embeddings.word_embeddings.weight)


def test_unknown_layer_index_is_a_one_line_error(teacher):
    with pytest.raises(ConfigError, match=r"layers \[0, 7\]: the teacher has layers 0\.\.2"):
        keep_layers(teacher, [0, 7])


def test_vocab_remap_gives_the_full_models_outputs(teacher, tok):
    # setup
    kept = corpus_vocabulary(tok, TEXT)
    unk = tok.token_to_id("[UNK]")
    # execute
    small = restrict_vocab(teacher, kept, unk, "unk")
    unseen = ["Dictionaries map hashable keys to values."]
    # assert: same outputs for text inside the kept vocabulary, from the original ids
    assert small.bert.embeddings.word_embeddings.num_embeddings == len(kept) < 100
    np.testing.assert_allclose(embed(small, tok, TEXT), embed(teacher, tok, TEXT), atol=1e-6)
    # outside it, a token is read as [UNK]
    ids, mask = tokenize(tok, unseen)
    as_unk = np.where(np.isin(ids, kept), ids, unk)
    with torch.no_grad():
        got = small(torch.from_numpy(ids), torch.from_numpy(mask))
        want = teacher(torch.from_numpy(as_unk), torch.from_numpy(mask))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)


def test_a_token_outside_the_kept_vocabulary_reads_as_its_nearest_kept_token(teacher, tok):
    # setup: "values" is kept; its row in the full table is the most similar to the one of
    # "keys", which is not (the tiny teacher's table is random, so the test plants it)
    kept = corpus_vocabulary(tok, TEXT)
    unk, keys, values = (tok.token_to_id(t) for t in ("[UNK]", "keys", "values"))
    assert values in kept and keys not in kept
    teacher = copy.deepcopy(teacher)  # the fixture is shared by the module
    with torch.no_grad():
        table = teacher.bert.embeddings.word_embeddings.weight
        table[keys] = table[values] * 2 + 1e-3 * torch.randn_like(table[values])
    # execute
    small = restrict_vocab(teacher, kept, unk, "nearest", special_ids(tok))
    # assert: kept ids keep their rows, "keys" reads as "values", no id maps to a special token
    vm = small.vocab_map
    assert vm[torch.tensor(kept)].tolist() == list(range(len(kept)))
    assert int(vm[keys]) == kept.index(values)
    specials = {kept.index(i) for i in special_ids(tok) if i in kept}
    dropped = [i for i in range(len(vm)) if i not in set(kept)]
    assert not specials & set(vm[torch.tensor(dropped)].tolist())


def test_ff_pruning_keeps_the_important_neurons_for_real(teacher, tok):
    # setup
    ids, mask = tokenize(tok, TEXT)
    full = keep_layers(teacher, [0, 1, 2])
    # execute
    imp = ff_importance(full, ids, mask)
    same = keep_layers(teacher, [0, 1, 2])
    prune_ff(same, 64, imp)  # keeping all: nothing changes
    half = keep_layers(teacher, [0, 1, 2])
    prune_ff(half, 16, imp)
    # assert
    np.testing.assert_allclose(embed(same, tok, TEXT), embed(full, tok, TEXT), atol=1e-5)
    assert half.bert.encoder.layer[0].intermediate.dense.out_features == 16
    assert half.bert.config.intermediate_size == 16
    assert mean_cosine(embed(half, tok, TEXT), embed(full, tok, TEXT)) > 0.5
    with pytest.raises(ConfigError, match="ff_neurons 65"):
        prune_ff(keep_layers(teacher, [0]), 65, imp[:1])


def test_recall_and_overlap_at_k_on_a_hand_made_example():
    # setup: two tight clusters, {0, 1, 2} and {3, 4, 5}: each point's 2 nearest neighbours are
    # the other two of its cluster
    angles = np.array([0.0, 0.01, 0.02, 1.5, 1.51, 1.52])
    teacher = np.stack([np.cos(angles), np.sin(angles)], 1)
    student = teacher[[0, 1, 5, 3, 4, 2]]  # the student puts 2 into the other cluster, 5 too
    # execute
    overlap = top_k_overlap(student, teacher, k=2)
    recall = neighbour_recall(student, teacher, k=2)
    # assert: 0 finds {1, 5} (1 of 2), 1 {0, 5}, 2 {3, 4} (0 of 2), 3 {4, 2}, 4 {3, 2}, 5 {0, 1}
    assert overlap == pytest.approx((0.5 + 0.5 + 0 + 0.5 + 0.5 + 0) / 6)
    # the teacher's nearest: 0 -> 1, 1 -> 0 (tie with 2: lower index), 2 -> 1, 3 -> 4, 4 -> 3,
    # 5 -> 4; found in the student's top 2 for 0, 1, 3 and 4, not for 2 and 5
    assert recall == pytest.approx(4 / 6)
    assert neighbour_recall(teacher, teacher, k=2) == top_k_overlap(teacher, teacher, k=2) == 1.0
    assert set(top_k_neighbours(student, 2)[2]) == {3, 4}  # never itself
    with pytest.raises(ValueError, match="more than 10"):
        neighbour_recall(teacher, teacher)
    with pytest.raises(ValueError, match="more than 10"):
        top_k_overlap(teacher, teacher)


def test_mean_cosine():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 0.0], [2.0, 0.0]])
    assert mean_cosine(a, b) == pytest.approx(0.5)


def test_missing_extra_is_a_one_line_error(monkeypatch):
    # setup: as if transformers were not installed
    monkeypatch.setitem(sys.modules, "transformers", None)
    # execute / assert
    with pytest.raises(ConfigError, match=r"pip install 'compress\[transformers\]'") as e:
        require_transformers()
    assert "\n" not in str(e.value)
