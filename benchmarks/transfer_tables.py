"""The tables of docs/transfer.md from a finished `compress run pipelines/mnist-transfer.yaml`:
test accuracy with its 95 % Wilson interval (ORT, the 1,000 held-out digits), McNemar's exact p
of each student against the student trained alone, size, parameters, p50 at batch 1 and 32
(1 thread) and speed-ups against the fp32 teacher, all read from the run's bench.json files;
nothing is measured or typed in here.

    python benchmarks/transfer_tables.py [exported/mnist-transfer]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [  # (model id in the bench, what it is)
    ("teacher_onnx", "teacher: ImageNet MobileNetV2 fine-tuned (fp32)"),
    ("teacher_int8", "teacher, int8"),
    ("scratch_onnx", "MobileNetV2 from scratch, same recipe (fp32)"),
    ("student_alone_fp32", "student alone (labels only, fp32)"),
    ("student_labeled_fp32", "student distilled, labelled images only (fp32)"),
    ("student_onnx", "student distilled, + unlabeled transfer set (fp32)"),
    ("student_fp32", "  pruned (fp32)"),
    ("student_int8", "  pruned, int8 (cpu)"),
    ("student_int8_mobile", "  pruned, int8 (target: mobile)"),
]


def _p(tests: list[dict], a: str, b: str) -> float | None:
    for t in tests:
        if {t["a"], t["b"]} == {a, b}:
            return t["p_value"]
    return None


def table(root: Path) -> str:
    bench = json.loads((root / "bench" / "bench.json").read_text())
    models, tests = dict(bench["models"]), bench["accuracy_tests"]
    # models measured in the other benches (the batch-1 mobile graph, the from-scratch net):
    # their accuracy and size; speed-ups only against a teacher timed in the same bench
    for other, mid in (("bench_scratch", "scratch_onnx"), ("bench_targets", "student_int8_mobile")):
        path = root / other / "bench.json"
        if path.is_file():
            extra = json.loads(path.read_text())
            models.setdefault(mid, extra["models"][mid])
            tests = tests + extra["accuracy_tests"]
    teacher = models["teacher_onnx"]["latency"]
    lines = ["| model | test acc. % [95 % CI] | McNemar p vs alone | size KB | params | "
             "p50 b1 ms | p50 b32 ms | speed-up b1 | speed-up b32 |",
             "|---|---|---|---|---|---|---|---|---|"]
    peers = [(mid, f"peer: {m.get('peer', mid)}") for mid, m in models.items()
             if m.get("role") == "peer"]
    for mid, what in ROWS + peers:
        m = models.get(mid)
        if m is None:
            continue
        lo, hi = m["accuracy_ci_pct"]
        p = _p(tests, mid, "student_alone_fp32") if mid != "student_alone_fp32" else None
        lat = m.get("latency", {})
        cells = []
        for key in ("b1_t1", "b32_t1"):
            cells.append(f"{lat[key]['p50_ms']:.3f}" if key in lat else "-")
        ups = []
        for key in ("b1_t1", "b32_t1"):
            ok = key in lat and key in teacher and mid in bench["models"]
            ups.append(f"{teacher[key]['p50_ms'] / lat[key]['p50_ms']:.2f}x" if ok else "-")
        params = m.get("params")
        lines.append(
            f"| {what} (`{mid}`) | {m['accuracy_pct']:.1f} [{lo:.1f}, {hi:.1f}] | "
            f"{'-' if p is None else f'{p:.3g}'} | {m['size_bytes'] / 1024:.0f} | "
            f"{'-' if params is None else f'{params:,}'} | {cells[0]} | {cells[1]} | "
            f"{ups[0]} | {ups[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "exported/mnist-transfer")))
