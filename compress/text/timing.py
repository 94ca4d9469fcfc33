"""The inputs text models are timed on. Candidates a stage chooses between (`embed_export`'s
graphs, `embed_quantize`'s int8 modes): batch 1, one input of real text exactly
`sequence_length` tokens long, all candidates interleaved so drift hits them alike. The bench
adds the lengths people send: each test sentence at its own length, and batches padded to
their own longest sentence."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CandidateTiming(BaseModel):
    """Config fields of a stage that times candidates."""

    sequence_length: int = Field(128, ge=2, le=512, description="latency input length (tokens)")
    threads: int = Field(1, ge=0, description="ORT intra-op threads while timing")
    latency_time_s: float = Field(2.0, ge=0, description="measured time per candidate")


def full_length_feed(tok, sentences: list[str], length: int) -> dict:
    """One input of exactly `length` real tokens (sentences run together), batch 1."""
    from compress.text.encoder import tokenize

    text, ids = "", None
    for s in sentences:
        text = f"{text} {s}"
        ids, mask = tokenize(tok, [text])
        if ids.shape[1] >= length:
            break
    return {"input_ids": ids[:, :length], "attention_mask": mask[:, :length]}


def time_candidates(sessions: dict, tok, sentences: list[str],
                    cfg: CandidateTiming) -> tuple[dict, int]:
    """(latency stats per session name, tokens in the input): batch 1, `cfg.sequence_length`
    tokens of `sentences` (fewer if they run out), interleaved."""
    from compress.measure.latency import measure_interleaved

    feed = full_length_feed(tok, sentences, cfg.sequence_length)
    stats = measure_interleaved(sessions, dict.fromkeys(sessions, feed), warmup_runs=5,
                                min_runs=20, min_time_s=cfg.latency_time_s)
    return stats, int(feed["input_ids"].shape[1])


def sentence_feeds(tok, sentences: list[str]) -> list[dict]:
    """One batch-1 input per sentence at its own tokenized length: the lengths people send."""
    from compress.text.encoder import tokenize

    return [dict(zip(("input_ids", "attention_mask"), tokenize(tok, [s]), strict=True))
            for s in sentences]


def batch_feeds(tok, sentences: list[str], batch: int) -> list[dict]:
    """Consecutive batches of `batch` sentences in the given order, each padded to its own
    longest (a partial last batch is dropped unless it is the only one)."""
    from compress.text.encoder import tokenize

    starts = range(0, max(1, len(sentences) - batch + 1), batch)
    return [dict(zip(("input_ids", "attention_mask"), tokenize(tok, sentences[i:i + batch]),
                     strict=True)) for i in starts]
