"""Real English sentences, offline: the Python documentation shipped in the standard library
(`pydoc_data.topics`), cleaned and split deterministically, de-duplicated and length-filtered,
then split train/val/test with a seed. Text data for sentence-embedding pipelines (no labels)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from compress.data.splits import SplitFields

# A sentence ends at . ! or ? followed by white space and a capital letter or a quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\. |[#$@])")
_BULLET = re.compile(r"^\s*([*-]|\d+\.)\s+")


class PydocData(SplitFields):
    source: Literal["pydoc"] = "pydoc"
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="fraction held out for test")
    min_words: int = Field(6, ge=1, le=100, description="shorter sentences are dropped")
    max_words: int = Field(60, ge=2, le=500, description="longer sentences are dropped")
    max_sentences: int | None = Field(
        None, ge=30, description="keep this many sentences (seeded sample); None = all")
    extra_train: tuple[Literal["stdlib_docstrings", "pydoc_pairs", "pydoc_halves"], ...] = Field(
        (), description="more unlabelled text for the train split only: "
        "stdlib_docstrings = the docstrings of the standard library's modules (parsed, not "
        "imported), sentences also in val/test dropped; pydoc_pairs = every two consecutive "
        "sentences of the documentation that are both in train, joined; pydoc_halves = the "
        "two halves (by words) of every train sentence of 2 x min_words words or more (both: "
        "more in-domain text, no val/test sentence in it)")
    max_extra_sentences: int | None = Field(
        None, ge=1, description="cap on the stdlib_docstrings sentences (seeded sample); "
        "None = all")


@dataclass(frozen=True)
class TextCorpus:
    """Sentences for the three splits; no labels (targets come from a teacher model). The
    first `primary_train` train sentences come from the source that val and test come from;
    any after them are `extra_train` text."""

    name: str
    train: list[str]
    val: list[str]
    test: list[str]
    primary_train: int | None = None  # None: all of them


def clean_sentences(text: str, min_words: int, max_words: int) -> list[str]:
    """Prose sentences of one documentation page, in order: paragraphs that look like code or
    tables are skipped, line breaks folded, sentences split at their final punctuation."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        first = lines[0]
        bullet = _BULLET.match(first)
        # Interactive sessions and grammar rules; other code is caught sentence by sentence
        # (it rarely starts with a capital and ends with a full stop, and is mostly symbols).
        if any(_CODE_LINE.match(ln) or "::=" in ln for ln in lines):
            continue
        if any(set(ln.strip()) <= set("=-*+|") for ln in lines):
            continue  # a table or an underlined heading
        if bullet:
            lines[0] = first[bullet.end():]
        flat = " ".join(ln.strip() for ln in lines)
        for s in _SENTENCE_END.split(flat):
            s = s.strip()
            words = s.split()
            letters = sum(c.isalpha() for c in s)
            if (min_words <= len(words) <= max_words and s[:1].isupper()
                    and s[-1:] in ".!?:" and letters >= 0.7 * len(s.replace(" ", ""))):
                out.append(s)
    return out


def pydoc_sentences(min_words: int = 6, max_words: int = 60) -> list[str]:
    """Every distinct sentence of the stdlib's documentation topics, in a fixed order."""
    from pydoc_data.topics import topics

    seen: dict[str, None] = {}
    for key in sorted(topics):
        for s in clean_sentences(topics[key], min_words, max_words):
            seen.setdefault(s, None)
    return list(seen)


def stdlib_docstring_sentences(min_words: int = 6, max_words: int = 60) -> list[str]:
    """Sentences of every docstring in the standard library's own modules (tests, idlelib and
    site-packages left out), read with `ast` so nothing is imported; in a fixed order. The set
    depends on the Python version, which the manifest records."""
    import ast
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    seen: dict[str, None] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in ("test", "tests", "idlelib", "site-packages", "dist-packages") for p in rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue  # a few stdlib files are templates or other encodings
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                          | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    for s in clean_sentences(doc, min_words, max_words):
                        seen.setdefault(s, None)
    return list(seen)


def halves(sentence: str, min_words: int) -> list[str]:
    """The sentence's first and second half by words, if each has at least `min_words`."""
    words = sentence.split()
    if len(words) < 2 * min_words:
        return []
    mid = len(words) // 2
    return [" ".join(words[:mid]), " ".join(words[mid:])]


def load_pydoc_corpus(cfg: PydocData) -> TextCorpus:
    sentences = pydoc_sentences(cfg.min_words, cfg.max_words)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(sentences))
    if cfg.max_sentences is not None:
        order = order[: cfg.max_sentences]
    n_test = max(1, round(len(order) * cfg.test_fraction))
    n_val = max(1, round(len(order) * cfg.val_fraction))
    pick = [sentences[i] for i in order]
    test, val, train = pick[:n_test], pick[n_test:n_test + n_val], pick[n_test + n_val:]
    primary = len(train)
    if "stdlib_docstrings" in cfg.extra_train:
        held_out = set(test) | set(val) | set(train)
        extra = [s for s in stdlib_docstring_sentences(cfg.min_words, cfg.max_words)
                 if s not in held_out]
        extra_order = rng.permutation(len(extra))[: cfg.max_extra_sentences]
        train = train + [extra[i] for i in extra_order]
    if "pydoc_pairs" in cfg.extra_train:
        in_train = set(order[n_test + n_val:].tolist())
        train = train + [f"{sentences[i]} {sentences[i + 1]}" for i in range(len(sentences) - 1)
                         if i in in_train and i + 1 in in_train]
    if "pydoc_halves" in cfg.extra_train:
        train = train + [half for s in train[:primary] for half in halves(s, cfg.min_words)]
    return TextCorpus(name="pydoc", test=test, val=val, train=train, primary_train=primary)
