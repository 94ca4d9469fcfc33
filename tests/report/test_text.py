"""compress.report.text: the sentence-encoder bench table shows every setting measured, from
bench.json only."""

from __future__ import annotations

from compress.report.text import embed_bench_table

SETTINGS = ["b1_s128_t1", "b1_real_t1", "b32_real_t1"]


def _bench() -> dict:
    metrics = {}
    for name, scale, size in (("teacher_onnx", 1.0, 90e6), ("student_int8", 0.2, 5e6)):
        metrics |= {f"{name}.size_bytes": size, f"{name}.size_reduction": 90e6 / size,
                    f"{name}.test_cosine": 1.0 if scale == 1 else 0.918,
                    f"{name}.recall_at_10": 0.95, f"{name}.overlap_at_10": 0.7}
        for i, s in enumerate(SETTINGS):
            metrics |= {f"{name}.{s}.p50_ms": (i + 1) * 10 * scale,
                        f"{name}.{s}.p90_ms": (i + 1) * 12 * scale,
                        f"{name}.{s}.speedup": 1 / scale}
    return {"metrics": metrics, "settings": SETTINGS, "test_sentences": 324,
            "real_lengths": {"b1_real": {"p50_tokens": 21.0}, "b32_real": {"p50_tokens": 48.0}},
            "models": {"teacher_onnx": {"graph": "unfused"}, "student_int8": {"graph": "fused"}}}


def test_table_has_a_row_per_model_and_a_column_per_setting():
    # execute
    text = embed_bench_table(_bench())
    rows = [r for r in text.splitlines() if r.startswith("| `")]
    # assert
    assert [r.split(" | ")[0] for r in rows] == ["| `teacher_onnx`", "| `student_int8`"]
    assert "batch 1, 128 tokens" in text and "own length (median 21 tokens)" in text
    assert "batch 32, padded to its longest (median 48 tokens)" in text
    student = rows[1].split(" | ")
    assert student[1] == "fused" and student[4] == "0.9180" and "18.0x" in student[3]
    assert "6.00 ms / 7.20 ms" in rows[1] and rows[1].count("5.00x") == 3
