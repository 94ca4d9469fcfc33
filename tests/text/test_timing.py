"""compress.text.timing: the latency input is real text of exactly the asked length."""

from __future__ import annotations

import pytest

from compress.text.encoder import load_tokenizer
from compress.text.timing import full_length_feed

SENTENCES = ["Lists are mutable sequences, typically used to store collections of items.",
             "Tuples are immutable sequences.", "A generator yields values one at a time."] * 20


@pytest.fixture(scope="module")
def tok(tiny_bert_dir):
    return load_tokenizer(tiny_bert_dir)


def test_feed_has_exactly_the_asked_tokens_all_real(tok):
    # execute
    feed = full_length_feed(tok, SENTENCES, 128)
    # assert
    assert feed["input_ids"].shape == feed["attention_mask"].shape == (1, 128)
    assert feed["attention_mask"].all() and feed["input_ids"][0, 0] == tok.token_to_id("[CLS]")


def test_feed_is_shorter_when_the_text_runs_out(tok):
    # execute
    feed = full_length_feed(tok, SENTENCES[:1], 128)
    # assert
    assert 5 < feed["input_ids"].shape[1] < 128


def test_sentence_feeds_are_one_sentence_each_at_its_own_length(tok):
    from compress.text.encoder import tokenize
    from compress.text.timing import sentence_feeds

    # execute
    feeds = sentence_feeds(tok, SENTENCES[:3])
    # assert: no padding at all
    assert [f["input_ids"].shape for f in feeds] == [tokenize(tok, [s])[0].shape
                                                    for s in SENTENCES[:3]]
    assert all(f["attention_mask"].all() for f in feeds)
    assert len({f["input_ids"].shape[1] for f in feeds}) == 3


def test_batch_feeds_pad_each_batch_to_its_own_longest(tok):
    from compress.text.encoder import tokenize
    from compress.text.timing import batch_feeds

    # execute
    feeds = batch_feeds(tok, SENTENCES[:7], 3)  # 2 full batches; the partial one is dropped
    # assert
    assert [f["input_ids"].shape[0] for f in feeds] == [3, 3]
    for i, f in enumerate(feeds):
        longest = max(tokenize(tok, [s])[0].shape[1] for s in SENTENCES[3 * i:3 * i + 3])
        assert f["input_ids"].shape[1] == longest and not f["attention_mask"].all()
    assert len(batch_feeds(tok, SENTENCES[:2], 3)) == 1  # fewer than a batch: one batch
