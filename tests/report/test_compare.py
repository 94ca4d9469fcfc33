"""`compress compare`: two runs of the tiny pipeline, the candidate's model much wider (larger
and slower); the regression is reported, fails under a threshold and passes without one."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.report.compare import CompareConfig, compare_runs
from tests.conftest import TINY_PIPELINE, _run_once

# Quick but enough runs for a p50: the width gap below is ~90x in size (and slower).
FAST = ["--min-time-s", "0.2", "--min-runs", "50", "--warmup-runs", "5"]


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """The tiny pipeline with a 512x512 hidden MLP instead of 32: the same model id."""
    pipeline = copy.deepcopy(TINY_PIPELINE)
    pipeline["stages"][0]["model"] = {"arch": "mlp", "hidden": [512, 512]}
    return _run_once(tmp_path_factory, pipeline)


def _compare(*args: str):
    return CliRunner().invoke(cli, ["compare", *args, *FAST], prog_name="compress")


def test_wider_candidate_fails_the_thresholds(tiny_run, wide_run, tmp_path):
    # setup
    base, cand = str(tiny_run[0]), str(wide_run[0])
    md = tmp_path / "compare.md"
    # execute
    strict = _compare(base, cand, "--max-size-increase-pct", "10",
                      "--max-latency-regression-pct", "50", "--md", str(md), "--json")
    lenient = _compare(base, cand)
    # assert: exit 1 under thresholds, naming the checks; 0 without
    assert strict.exit_code == 1, strict.output
    doc = json.loads(strict.stdout)
    checks = {c["gate"]: c for c in doc["checks"]}
    assert not checks["size increase of teacher_onnx"]["passed"]
    assert checks["size increase of teacher_onnx"]["measured_value"] > 1000
    # latency: one check per batch size, each verdict the comparison of what it measured (how
    # much slower the wide model is depends on the CPU and its load: not asserted here)
    latency = [c for n, c in checks.items() if n.startswith("p50 latency increase")]
    assert len(latency) == 2
    assert all(c["passed"] == (c["measured_value"] <= 50) for c in latency)
    assert "size increase of teacher_onnx" in strict.stderr and "FAIL" in strict.stderr
    row = doc["models"][0]
    assert row["shipped"] and row["latency"]["1"]["candidate_p50_ms"] > 0
    text = md.read_text()
    assert "| `teacher_onnx` (shipped) |" in text and "❌ **FAIL**" in text
    assert "(re-measured)" in text
    assert lenient.exit_code == 0, lenient.output
    assert "no thresholds given" in lenient.stdout and "| `teacher_onnx` (shipped) |" in (
        lenient.stdout)


def test_a_run_against_itself_passes_its_thresholds(tiny_run):
    # setup: no latency threshold, so the outcome does not depend on this machine's noise
    cfg = CompareConfig(max_accuracy_regression_pts=0, max_size_increase_pct=0,
                        min_time_s=0.1, min_runs=50)
    # execute
    result = compare_runs(tiny_run[0], tiny_run[0], cfg)
    # assert: identical files, identical accuracy and size; latency measured for both
    assert result["passed"], result["checks"]
    row = result["models"][0]
    assert row["accuracy_change_pts"] == 0 and row["size_change_pct"] == 0
    assert result["batch_sizes"] == [1, 8] and result["threads"] == 1
    assert all(v["baseline_runs"] >= 50 and v["candidate_runs"] >= 50
               for v in row["latency"].values())
