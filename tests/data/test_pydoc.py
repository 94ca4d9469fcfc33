"""The pydoc sentence corpus: deterministic cleaning and splitting, de-duplicated, disjoint."""

from __future__ import annotations

from compress.data import PydocData, TextCorpus, load_dataset
from compress.data.pydoc import clean_sentences, halves, load_pydoc_corpus, pydoc_sentences

PAGE = """Lists
*****

Lists are mutable sequences.  They are typically used to store
collections of homogeneous items. Short one.

   >>> a = [1, 2, 3]
   >>> a.append(4)

   list_display ::= "[" [flexible_expression_list | comprehension] "]"

* A bullet item can hold a full sentence about
  lists and their methods.

+-------+-------+
| a     | b     |
+-------+-------+
"""


def test_cleaning_keeps_prose_sentences_only():
    # execute
    got = clean_sentences(PAGE, min_words=3, max_words=60)
    # assert: line breaks folded, code, grammar and tables dropped, bullets stripped
    assert got == [
        "Lists are mutable sequences.",
        "They are typically used to store collections of homogeneous items.",
        "A bullet item can hold a full sentence about lists and their methods.",
    ]


def test_sentences_are_distinct_and_in_a_fixed_order():
    # execute
    a, b = pydoc_sentences(), pydoc_sentences()
    # assert
    assert a == b and len(a) == len(set(a)) > 1000
    assert all(6 <= len(s.split()) <= 60 for s in a)


def test_split_is_seeded_disjoint_and_complete():
    # execute
    c0 = load_pydoc_corpus(PydocData(seed=0))
    again = load_pydoc_corpus(PydocData(seed=0))
    c1 = load_pydoc_corpus(PydocData(seed=1))
    # assert
    assert c0 == again and c0.train != c1.train
    parts = [set(c0.train), set(c0.val), set(c0.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == len(pydoc_sentences())
    assert len(c0.test) == round(len(pydoc_sentences()) * 0.15)


def test_load_dataset_returns_a_text_corpus_and_max_sentences_caps_it():
    # execute
    small = load_dataset(PydocData(max_sentences=100))
    # assert
    assert isinstance(small, TextCorpus)
    assert len(small.train) + len(small.val) + len(small.test) == 100
    assert len(small.test) == 15 and len(small.val) == 10


def test_extra_train_text_follows_the_corpus_own_sentences_and_holds_no_val_or_test_one():
    # setup
    base = load_pydoc_corpus(PydocData(seed=0))
    # execute
    c = load_pydoc_corpus(PydocData(seed=0, extra_train=("stdlib_docstrings", "pydoc_pairs",
                                                         "pydoc_halves"),
                                    max_extra_sentences=500))
    # assert: val/test unchanged, the corpus's own train sentences first and counted
    assert (c.val, c.test) == (base.val, base.test)
    assert c.primary_train == len(base.train) and c.train[: c.primary_train] == base.train
    n_halves = sum(len(halves(s, 6)) for s in base.train)
    docstrings = c.train[c.primary_train:][:500]
    pairs = c.train[c.primary_train + 500: len(c.train) - n_halves]
    held_out = set(c.val) | set(c.test)
    assert len(docstrings) == 500 and not set(docstrings) & (held_out | set(base.train))
    # pairs: two consecutive documentation sentences, both from train
    sentences, own = pydoc_sentences(), set(base.train)
    joined = {f"{a} {b}" for a, b in zip(sentences, sentences[1:], strict=False)
              if a in own and b in own}
    assert len(pairs) > 500 and set(pairs) == joined
    assert not any(s in p for p in pairs for s in held_out)
    # halves: of train sentences only
    assert n_halves > 500 and c.train[-n_halves:] == [h for s in base.train for h in halves(s, 6)]


def test_halves_split_a_sentence_by_words_when_both_are_long_enough():
    # execute / assert
    assert halves("one two three four five six seven", 3) == ["one two three",
                                                               "four five six seven"]
    assert halves("one two three four five", 3) == []
