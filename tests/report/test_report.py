"""Report: summary table first, report.json with every number, readable PNG plots."""

from __future__ import annotations

import json

from compress.report import write_report
from compress.report.markdown import fmt_ci, fmt_energy, summary_table
from compress.report.summary import pareto_front, summary_rows
from tests.conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_writes_markdown_json_and_plots(tiny_run):
    # setup
    root, _ = tiny_run
    for name in ("report.md", "report.json", "accuracy_vs_latency.png"):
        (root / name).unlink(missing_ok=True)
    # execute
    out = write_report(root)
    # assert
    text = (root / "report.md").read_text()
    assert text.startswith("# Report: pipeline `tiny`\n\n## Summary: bench `bench`")
    assert text.index("## Summary") < text.index("## Stages") < text.index("## Benchmark")
    assert "| `teacher_onnx` " in text and "(est.)" in text and "Energy: estimate" in text
    assert "![accuracy vs latency](accuracy_vs_latency.png)" in text
    for png in ("accuracy_vs_latency.png", "size.png", "energy_per_inference.png",
                "energy_per_stage.png"):
        assert (root / png).read_bytes()[:8] == PNG_MAGIC and png in out["files"]
    report = json.loads((root / "report.json").read_text())
    row = report["summary"]["bench"][0]
    bench = json.loads((root / "bench" / "bench.json").read_text())
    assert row["p50_small_ms"] == bench["models"]["teacher_onnx"]["latency"]["b1_t1"]["p50_ms"]
    assert report["benches"]["bench"] == bench
    assert {r["stage_id"] for r in report["stage_energy"]} == {"teacher", "teacher_onnx", "bench"}


def test_unchanged_numbers_are_not_redrawn(tiny_run):
    root, _ = tiny_run
    write_report(root)
    before = (root / "size.png").stat().st_mtime_ns
    write_report(root)
    assert (root / "size.png").stat().st_mtime_ns == before


def test_pareto_front():
    points = {"slow_best": (10.0, 99.0), "fast_ok": (1.0, 95.0), "dominated": (5.0, 94.0),
              "tie_slower": (1.5, 95.0)}
    assert pareto_front(points) == ["fast_ok", "slow_best"]


def _bench(acc_b: float, p50_b: float) -> dict:
    def model(acc, p50, size):
        lat = {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "p50_ci_low_ms": p50 * 0.9,
               "p50_ci_high_ms": p50 * 1.1}
        return {"accuracy_pct": acc, "size_bytes": size, "params": 10,
                "latency": {"b1_t1": lat, "b8_t1": {**lat, "p50_ms": p50 * 4}}}

    return {"baseline": "a", "models": {"a": model(99.0, 2.0, 4000), "b": model(acc_b, p50_b,
                                                                                1000)}}


def test_summary_ratios_against_the_baseline():
    rows = {r["model"]: r for r in summary_rows(_bench(98.5, 0.5))}
    b = rows["b"]
    assert b["size_reduction_x"] == 4.0 and b["speedup_small_x"] == 4.0
    assert b["accuracy_drop_pts"] == 0.5 and b["pareto"] and rows["a"]["pareto"]
    table = summary_table(_bench(98.5, 0.5))
    assert "| `b` * | 98.50 % |" in table and "4.0x" in table and "+0.50 pts" in table
    assert fmt_energy(0.05, "estimate") == "50 uJ (est.)" and fmt_energy(2.0, "rapl") == "2 mJ"


def test_report_command_prints_the_summary_and_the_path(tiny_run):
    root, _ = tiny_run
    res = run_cli("report", str(root), "--summary")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("| model | test acc [95 % CI] |")
    assert f"report: {root / 'report.md'}" in res.stdout and "## Stages" not in res.stdout


def test_labels_stay_readable_when_models_share_one_accuracy():
    # setup: six models at the same accuracy, three of them almost at the same latency
    from compress.report.plots import _figure, _place_labels

    fig, ax = _figure(8, 5.5)
    points = {"teacher_onnx": (1.9, 97.5), "student_fp32": (0.2, 97.5),
              "student_int8": (0.21, 97.5), "ort_quantize_static": (0.6, 97.5),
              "ort_quantize_dynamic": (0.62, 97.5), "torch_eager": (0.65, 97.5)}
    ax.plot([p[0] for p in points.values()], [p[1] for p in points.values()], "o")
    ax.set_xscale("log")
    # execute
    boxes = _place_labels(fig, ax, list(points.items()))
    # assert: no label covers another
    assert len(boxes) == 6
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_summary_shows_cold_latency_intervals_and_the_paired_test():
    # setup: the two-model bench, with cold figures, intervals and a McNemar test
    bench = _bench(98.5, 0.5)
    for name, cold in (("a", 4.0), ("b", 2.0)):
        m = bench["models"][name]
        m["latency"]["b1_t1"]["cold"] = {"p50_ms": cold, "p50_ci_low_ms": cold * 0.9,
                                         "p50_ci_high_ms": cold * 1.1}
        m["accuracy_ci_pct"] = [m["accuracy_pct"] - 1, min(m["accuracy_pct"] + 0.5, 100)]
    bench["accuracy_tests"] = [{"a": "a", "b": "b", "only_a_correct": 3, "only_b_correct": 1,
                                "p_value": 0.625, "significant": False, "drop_pts": 0.5}]
    # execute
    rows = {r["model"]: r for r in summary_rows(bench)}
    table = summary_table(bench)
    # assert
    assert rows["b"]["cold_speedup_small_x"] == 2.0 and rows["b"]["speedup_small_x"] == 4.0
    assert "p50 cold cache, batch 1, 1 thr" in table and "speed-up cold cache" in table
    assert "| `b` * | 98.50 % [97.5-99.0] |" in table and "+0.50 pts (p 0.62) |" in table
    assert fmt_ci(0.44, 8.6) == " [440 us - 8.60 ms]"  # bounds either side of 1 ms: both units


def _stub_drawing(monkeypatch) -> dict:
    """Plots written as bare PNG headers (drawing is tested above); {file: models drawn} of
    the accuracy-latency plots."""
    from compress.report import plots

    drawn = {}

    def accuracy(bench, path):
        drawn[path.name] = sorted(bench["models"])
        path.write_bytes(PNG_MAGIC)

    monkeypatch.setattr(plots, "plot_accuracy_latency", accuracy)
    for name in ("plot_energy", "plot_stage_energy"):
        monkeypatch.setattr(plots, name, lambda *a: a[-1].write_bytes(PNG_MAGIC))
    monkeypatch.setattr(plots, "plot_sizes", lambda m, b, path: path.write_bytes(PNG_MAGIC))
    return drawn


def _two_bench_run(tiny_run, tmp_path):
    """tiny_run's folder copied, plus a later bench of batch 1 only (as digits' bench_targets)
    of other models; the gates read the first bench."""
    import shutil

    from compress import artifacts

    root = tmp_path / "tiny"
    shutil.copytree(tiny_run[0], root)
    manifest = artifacts.read_json(root / "manifest.json")
    bench = artifacts.read_json(root / "bench" / "bench.json")
    entry = bench["models"]["teacher_onnx"]
    entry["latency"] = {"b1_t1": entry["latency"]["b1_t1"]}
    later = {**bench, "baseline": "students_only", "accuracy_tests": [],
             "models": {"students_only": entry, "other_student": entry}}
    (root / "late").mkdir()
    artifacts.write_json(root / "late" / "bench.json", later)
    artifacts.write_text(root / "late" / "bench.md", "late bench")
    manifest["stages"]["late"] = {**manifest["stages"]["bench"], "primary": "late/bench.json"}
    manifest["gate_bench"] = "bench"
    artifacts.write_json(root / "manifest.json", manifest)
    return root, manifest


def test_the_summary_and_the_plain_plots_are_the_gated_bench(tiny_run, tmp_path, monkeypatch):
    # setup
    root, manifest = _two_bench_run(tiny_run, tmp_path)
    drawn = _stub_drawing(monkeypatch)
    # execute
    out = write_report(root, manifest)
    # assert: the gated bench is the headline; the later one is drawn too, under its own name
    assert drawn == {"accuracy_vs_latency.png": ["teacher_onnx"],
                     "accuracy_vs_latency_late.png": ["other_student", "students_only"]}
    for png in ("accuracy_vs_latency_late.png", "size_late.png", "size.png",
                "energy_per_inference.png"):
        assert (root / png).read_bytes()[:8] == PNG_MAGIC and png in out["files"]
    text = out["markdown"]
    assert text.index("## Summary: bench `bench` (the bench the gates read)") < \
        text.index("![accuracy vs latency](accuracy_vs_latency.png)") < \
        text.index("## Summary: bench `late`") < \
        text.index("![accuracy vs latency late](accuracy_vs_latency_late.png)"), text[:3000]


def test_report_summary_prints_the_gated_bench_first(tiny_run, tmp_path, monkeypatch):
    # setup
    from click.testing import CliRunner

    from compress.cli.pipeline import report

    root, _ = _two_bench_run(tiny_run, tmp_path)
    _stub_drawing(monkeypatch)
    # execute: the command `make demo` ends with, in this process
    res = CliRunner().invoke(report, [str(root), "--summary"])
    # assert
    assert res.exit_code == 0, res.output
    first, second = res.stdout.split("bench `late`")
    assert first.startswith("bench `bench` (the bench the gates read):\n\n| model |")
    assert "| `teacher_onnx` " in first and "students_only" not in first
    # one batch size: one latency column and one speed-up, not the same figure twice
    head = second.split("\n")[2]
    assert head.count("p50 batch 1, 1 thr") == 1 and "| p50 cold cache, batch 1" in head
    assert "speed-up (batch 1, 1 thr) |" in head and "/ large" not in head
    assert "| 1.00x |" in second and "1.00x / 1.00x" not in second


def test_a_new_headline_bench_redraws_the_plots(tiny_run, tmp_path, monkeypatch):
    # setup: the report drawn with the later bench as headline (no gate_bench recorded)
    _stub_drawing(monkeypatch)
    root, manifest = _two_bench_run(tiny_run, tmp_path)
    del manifest["gate_bench"]
    first = write_report(root, manifest)["files"]
    # execute: the gates read the first bench
    second = write_report(root, {**manifest, "gate_bench": "bench"})["files"]
    # assert: the plain names now hold the gated bench's plots, the other bench its own
    assert "accuracy_vs_latency_bench.png" in first and "accuracy_vs_latency_late.png" in second
    assert "accuracy_vs_latency_late.png" not in first
