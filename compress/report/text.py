"""Markdown for a sentence-encoder bench (`embed_bench`'s bench.json): per model its graph, size,
quality against the teacher and p50/p90 latency in every setting measured (batch 1 x N tokens,
batch 1 at the test sentences' own lengths, padded batches), with speed-ups against the
baseline. Nothing here measures; every number comes from bench.json."""

from __future__ import annotations

from compress.report.units import fmt_bytes, fmt_ms


def setting_label(setting: str, real: dict) -> str:
    """'batch 1, 128 tokens' / 'batch 1, own length (p50 21 tokens)' / 'batch 32, padded'."""
    parts = setting.split("_")
    batch = parts[0][1:]
    if parts[1] == "real":
        info = real.get(f"b{batch}_real", {})
        if batch == "1":
            return f"batch 1, own length (median {info.get('p50_tokens', 0):.0f} tokens)"
        return (f"batch {batch}, padded to its longest (median {info.get('p50_tokens', 0):.0f}"
                " tokens)")
    return f"batch {batch}, {parts[1][1:]} tokens"


def embed_bench_table(bench: dict) -> str:
    """The models of one sentence-encoder bench, one row each; first row the baseline."""
    m = bench["metrics"]
    settings = bench.get("settings") or [
        s for s in next(iter(bench["models"].values())) if s.startswith("b")]
    real = bench.get("real_lengths", {})
    models = list(bench["models"])
    k = next((key.rsplit("_", 1)[1] for key in m if key.startswith(f"{models[0]}.recall_at_")),
             "10")
    head = ["model", "graph", "size", "reduction", "cosine", f"recall@{k}", f"overlap@{k}"]
    head += [f"p50 / p90, {setting_label(s, real)}" for s in settings]
    head += [f"speed-up, {s.split('_t')[0].replace('_', ' ')}" for s in settings]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in models:
        cells = [f"`{name}`", str(bench["models"][name].get("graph") or "-"),
                 fmt_bytes(m[f"{name}.size_bytes"]), f"{m[f'{name}.size_reduction']:.1f}x",
                 f"{m[f'{name}.test_cosine']:.4f}", f"{m[f'{name}.recall_at_{k}']:.3f}",
                 f"{m[f'{name}.overlap_at_{k}']:.3f}"]
        cells += [f"{fmt_ms(m[f'{name}.{s}.p50_ms'])} / {fmt_ms(m[f'{name}.{s}.p90_ms'])}"
                  for s in settings]
        cells += [f"{m[f'{name}.{s}.speedup']:.2f}x" for s in settings]
        rows.append("| " + " | ".join(cells) + " |")
    threads = sorted({s.rsplit("_t", 1)[1] for s in settings})
    notes = [
        "",
        f"{bench.get('test_sentences', '?')} test sentences. Cosine: mean cosine to the "
        f"teacher's embedding; recall@{k}: share of sentences whose teacher nearest neighbour is "
        f"among the model's {k} nearest; overlap@{k}: share of the teacher's top-{k} list kept. "
        f"Latency: ONNX Runtime, {', '.join(threads)} intra-op thread(s), all models "
        "interleaved; speed-ups are p50 against the first row. Graph: the float graph the model "
        "was built from (fused: as exported; unfused: residual LayerNorms kept out of "
        "SkipLayerNormalization; ort_fused: ORT's transformer optimizer).",
    ]
    return "\n".join(rows + notes)
