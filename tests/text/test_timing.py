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
