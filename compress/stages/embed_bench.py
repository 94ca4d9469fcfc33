"""Stage `embed_bench`: sentence encoders side by side in ONNX Runtime.

Consumes exported sentence encoders (the first is the baseline, e.g. the fp32 teacher) and the
`pretrained` teacher's embeddings; produces `bench.json`: per model the file size, p50/p90/p99
latency at batch 1 on `sequence_length` real tokens (all models interleaved), the test-set mean
cosine to the teacher, recall@k (is the teacher's nearest neighbour among the model's k nearest?)
and the stricter top-k overlap (how much of the teacher's top-k list the model keeps), and
speed-up and size reduction against the baseline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compress import artifacts
from compress.measure import ort as ort_measure
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.text.corpus import teacher_embeddings, text_corpus
from compress.text.timing import full_length_feed


class EmbedBenchConfig(StageConfig):
    stage: Literal["embed_bench"] = "embed_bench"
    models: list[str] = Field(min_length=1, description="embed_export/embed_quantize stage ids; "
                              "the first is the baseline")
    teacher: str = Field(description="id of the pretrained stage whose embeddings are the target")
    sequence_length: int = Field(128, ge=2, le=512, description="tokens per latency input")
    threads: list[int] = Field([1], min_length=1, description="ORT intra-op threads (0 = all)")
    k: int = Field(10, ge=1, description="neighbours compared for recall@k and overlap@k")
    warmup_runs: int = Field(10, ge=0)
    min_runs: int = Field(100, ge=1)
    min_time_s: float = Field(3.0, ge=0)

    data_kind = "text"
    references = {"models": {"onnx"}, "teacher": {"checkpoint"}}


def metric_names(cfg: EmbedBenchConfig) -> list[str]:
    out = []
    for m in cfg.models:
        out += [f"{m}.size_bytes", f"{m}.test_cosine", f"{m}.recall_at_{cfg.k}",
                f"{m}.overlap_at_{cfg.k}", f"{m}.size_reduction"]
        for t in cfg.threads:
            s = f"b1_s{cfg.sequence_length}_t{t}"
            out += [f"{m}.{s}.p50_ms", f"{m}.{s}.p90_ms", f"{m}.{s}.p99_ms", f"{m}.{s}.speedup"]
    return out


@register_stage(EmbedBenchConfig, produces="bench", metrics=metric_names)
def embed_bench(cfg: EmbedBenchConfig, ctx: StageContext) -> StageResult:
    from compress.measure.latency import measure_interleaved
    from compress.text.encoder import load_tokenizer, ort_embed
    from compress.text.metrics import mean_cosine, neighbour_recall, top_k_overlap

    corpus = text_corpus(ctx)
    targets = teacher_embeddings(ctx.inputs[cfg.teacher].path)["test"]
    paths = {m: ctx.inputs[m].path for m in cfg.models}
    tok = load_tokenizer(paths[cfg.models[0]].parent, cfg.sequence_length)
    feed = full_length_feed(tok, corpus.test, cfg.sequence_length)
    metrics: dict = {}
    results: dict = {"sequence_length": int(feed["input_ids"].shape[1]), "batch_size": 1,
                     "test_sentences": len(corpus.test), "models": {}}
    base = cfg.models[0]
    for m, p in paths.items():
        s = ort_measure.make_session(p, threads=0)
        emb = ort_embed(s, load_tokenizer(p.parent), corpus.test)
        metrics[f"{m}.size_bytes"] = p.stat().st_size
        metrics[f"{m}.test_cosine"] = mean_cosine(emb, targets)
        metrics[f"{m}.recall_at_{cfg.k}"] = neighbour_recall(emb, targets, cfg.k)
        metrics[f"{m}.overlap_at_{cfg.k}"] = top_k_overlap(emb, targets, cfg.k)
    for m in cfg.models:
        metrics[f"{m}.size_reduction"] = metrics[f"{base}.size_bytes"] / metrics[f"{m}.size_bytes"]
    for t in cfg.threads:
        sessions = {m: ort_measure.make_session(p, threads=t) for m, p in paths.items()}
        lat = measure_interleaved(sessions, dict.fromkeys(sessions, feed), cfg.warmup_runs,
                                  cfg.min_runs, cfg.min_time_s)
        del sessions
        setting = f"b1_s{cfg.sequence_length}_t{t}"
        for m in cfg.models:
            for q in ("p50_ms", "p90_ms", "p99_ms"):
                metrics[f"{m}.{setting}.{q}"] = getattr(lat[m], q)
            metrics[f"{m}.{setting}.speedup"] = lat[base].p50_ms / lat[m].p50_ms
            results["models"].setdefault(m, {})[setting] = lat[m].as_dict()
    results["session"] = ort_measure.session_settings()
    results["metrics"] = metrics
    artifacts.write_json(ctx.out_dir / "bench.json", results)
    return StageResult(primary="bench.json", metrics=metrics)
