"""Stage `embed_bench`: sentence encoders side by side in ONNX Runtime.

Consumes exported sentence encoders (the first is the baseline, e.g. the fp32 teacher) and the
`pretrained` teacher's embeddings; produces `bench.json`: per model the file size, the test-set
mean cosine to the teacher, recall@k (is the teacher's nearest neighbour among the model's k
nearest?) and the stricter top-k overlap (how much of the teacher's top-k list the model keeps),
and p50/p90/p99 latency in three settings, all models interleaved in each:

- `b1_s{N}_t{T}`: batch 1, one input of exactly `sequence_length` real tokens (the worst case
  a model with max_length N sees; the figure earlier runs reported);
- `b1_real_t{T}`: batch 1, every test sentence at its own tokenized length (the distribution
  of lengths people send; p50 is the median sentence's latency);
- `b{B}_real_t{T}`: batches of `batch_size` test sentences in corpus order, each padded to its
  longest sentence (what a bulk-embedding job sees);

with speed-up and size reduction against the baseline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compress import artifacts
from compress.measure import ort as ort_measure
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.stages.text import text_corpus
from compress.text.corpus import teacher_embeddings
from compress.text.timing import batch_feeds, full_length_feed, sentence_feeds


class EmbedBenchConfig(StageConfig):
    stage: Literal["embed_bench"] = "embed_bench"
    models: list[str] = Field(min_length=1, description="embed_export/embed_quantize stage ids; "
                              "the first is the baseline")
    teacher: str = Field(description="id of the pretrained stage whose embeddings are the target")
    sequence_length: int = Field(128, ge=2, le=512, description="tokens per latency input")
    threads: list[int] = Field([1], min_length=1, description="ORT intra-op threads (0 = all)")
    k: int = Field(10, ge=1, description="neighbours compared for recall@k and overlap@k")
    real_lengths: bool = Field(True, description="also time the test sentences at their own "
                               "lengths, at batch 1 and at batch `batch_size`")
    batch_size: int = Field(32, ge=2, le=1024, description="sentences per padded batch")
    warmup_runs: int = Field(10, ge=0)
    min_runs: int = Field(100, ge=1)
    min_time_s: float = Field(3.0, ge=0, description="measured time per model (fixed length); "
                              "wall time per setting (real lengths, at least one pass)")

    data_kind = "text"
    references = {"models": {"onnx"}, "teacher": {"checkpoint"}}


def settings(cfg: EmbedBenchConfig) -> list[str]:
    """The latency settings measured, per thread count."""
    out = []
    for t in cfg.threads:
        out.append(f"b1_s{cfg.sequence_length}_t{t}")
        if cfg.real_lengths:
            out += [f"b1_real_t{t}", f"b{cfg.batch_size}_real_t{t}"]
    return out


def metric_names(cfg: EmbedBenchConfig) -> list[str]:
    out = []
    for m in cfg.models:
        out += [f"{m}.size_bytes", f"{m}.test_cosine", f"{m}.recall_at_{cfg.k}",
                f"{m}.overlap_at_{cfg.k}", f"{m}.size_reduction"]
        for s in settings(cfg):
            out += [f"{m}.{s}.p50_ms", f"{m}.{s}.p90_ms", f"{m}.{s}.p99_ms", f"{m}.{s}.speedup"]
    return out


def _time_setting(cfg: EmbedBenchConfig, setting: str, sessions: dict, tok, test: list[str],
                  feed: dict) -> dict:
    from compress.measure.latency import measure_input_sequence, measure_interleaved

    if "_real_" not in setting:
        return measure_interleaved(sessions, dict.fromkeys(sessions, feed), cfg.warmup_runs,
                                   cfg.min_runs, cfg.min_time_s)
    batch = int(setting.split("_")[0][1:])
    feeds = sentence_feeds(tok, test) if batch == 1 else batch_feeds(tok, test, batch)
    # Padded batches: few of them, so several passes for stable percentiles.
    return measure_input_sequence(sessions, feeds, warmup_feeds=min(5, len(feeds)),
                                  min_passes=1 if batch == 1 else 3, min_time_s=cfg.min_time_s)


def input_lengths(tok, test: list[str], batch: int) -> dict:
    """Tokens per input in the real-length settings: what the latencies were measured on."""
    import numpy as np

    one = [f["input_ids"].shape[1] for f in sentence_feeds(tok, test)]
    padded = [f["input_ids"].shape[1] for f in batch_feeds(tok, test, batch)]
    return {"b1_real": {"inputs": len(one), "p50_tokens": float(np.median(one)),
                        "p90_tokens": float(np.percentile(one, 90)), "max_tokens": max(one)},
            f"b{batch}_real": {"inputs": len(padded), "p50_tokens": float(np.median(padded)),
                               "max_tokens": max(padded), "batch_size": batch}}


@register_stage(EmbedBenchConfig, produces="bench", metrics=metric_names)
def embed_bench(cfg: EmbedBenchConfig, ctx: StageContext) -> StageResult:
    from compress.text.encoder import load_tokenizer, ort_embed
    from compress.text.metrics import mean_cosine, neighbour_recall, top_k_overlap

    corpus = text_corpus(ctx)
    targets = teacher_embeddings(ctx.inputs[cfg.teacher].path)["test"]
    paths = {m: ctx.inputs[m].path for m in cfg.models}
    tok = load_tokenizer(paths[cfg.models[0]].parent, cfg.sequence_length)
    feed = full_length_feed(tok, corpus.test, cfg.sequence_length)
    metrics: dict = {}
    results: dict = {"sequence_length": int(feed["input_ids"].shape[1]), "batch_size": 1,
                     "test_sentences": len(corpus.test), "settings": settings(cfg),
                     "models": {m: {} for m in cfg.models}}
    if cfg.real_lengths:
        results["real_lengths"] = input_lengths(tok, corpus.test, cfg.batch_size)
    base = cfg.models[0]
    for m, p in paths.items():
        s = ort_measure.make_session(p, threads=0)
        emb = ort_embed(s, load_tokenizer(p.parent), corpus.test)
        metrics[f"{m}.size_bytes"] = p.stat().st_size
        metrics[f"{m}.test_cosine"] = mean_cosine(emb, targets)
        metrics[f"{m}.recall_at_{cfg.k}"] = neighbour_recall(emb, targets, cfg.k)
        metrics[f"{m}.overlap_at_{cfg.k}"] = top_k_overlap(emb, targets, cfg.k)
        meta = ort_measure.read_metadata(p)
        results["models"][m]["graph"] = ((meta.get("compress.quantization") or {}).get("graph")
                                         or (meta.get("compress.metrics") or {}).get("layernorm"))
    for m in cfg.models:
        metrics[f"{m}.size_reduction"] = metrics[f"{base}.size_bytes"] / metrics[f"{m}.size_bytes"]
    for t in cfg.threads:
        sessions = {m: ort_measure.make_session(p, threads=t) for m, p in paths.items()}
        for setting in (s for s in settings(cfg) if s.endswith(f"_t{t}")):
            lat = _time_setting(cfg, setting, sessions, tok, corpus.test, feed)
            for m in cfg.models:
                for q in ("p50_ms", "p90_ms", "p99_ms"):
                    metrics[f"{m}.{setting}.{q}"] = getattr(lat[m], q)
                metrics[f"{m}.{setting}.speedup"] = lat[base].p50_ms / lat[m].p50_ms
                results["models"][m][setting] = lat[m].as_dict()
        del sessions
    results["session"] = ort_measure.session_settings()
    results["metrics"] = metrics
    artifacts.write_json(ctx.out_dir / "bench.json", results)
    return StageResult(primary="bench.json", metrics=metrics)
