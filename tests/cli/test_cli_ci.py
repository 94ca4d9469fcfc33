"""`compress run --junit --summary-md --json`: what CI systems read, for a run whose gates fail,
one whose stage fails, and one whose reports already exist (the summary is appended)."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

from click.testing import CliRunner

from compress.cli import cli
from tests.conftest import TINY_PIPELINE


def _cases(junit) -> dict[str, dict[str, ET.Element]]:
    """{suite name: {case name: case}} of a JUnit file."""
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    return {s.get("name"): {c.get("name"): c for c in s.iter("testcase")}
            for s in root.iter("testsuite")}


def _run(write_yaml, tmp_path, pipeline: dict, *extra: str):
    path = write_yaml(pipeline)
    argv = ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--junit",
            str(tmp_path / "reports" / "junit.xml"), "--summary-md", str(tmp_path / "summary.md"),
            *extra]
    return CliRunner().invoke(cli, argv, prog_name="compress")


def test_impossible_gate_fails_its_case_alone(write_yaml, tmp_path):
    # setup: one gate no model can meet (a 1-byte ONNX file), two that pass
    pipeline = copy.deepcopy(TINY_PIPELINE)
    pipeline["gates"] = {"min_accuracy_pct": 10, "metrics": [
        {"metric": "teacher_onnx.size_bytes", "max": 1},
        {"metric": "teacher_onnx.parity_max_abs_diff", "max": 1e-3}]}
    # execute: twice, the second time from the cache and with the summary file already there
    first = _run(write_yaml, tmp_path, pipeline, "--json")
    junit_first = (tmp_path / "reports" / "junit.xml").read_text()
    second = _run(write_yaml, tmp_path, pipeline)
    # assert: exit 1, the impossible gate failed and only it
    assert first.exit_code == 1 and second.exit_code == 1, first.output
    cases = _cases(tmp_path / "reports" / "junit.xml")
    gates = cases["compress.tiny.gates"]
    assert set(gates) == {"teacher_onnx accuracy", "teacher_onnx.size_bytes",
                          "teacher_onnx.parity_max_abs_diff"}
    failure = gates["teacher_onnx.size_bytes"].find("failure")
    assert failure is not None and failure.get("message").endswith("wanted <= 1")
    assert all(gates[n].find("failure") is None for n in gates if n != "teacher_onnx.size_bytes")
    stages = cases["compress.tiny.stages"]
    assert list(stages) == ["teacher", "teacher_onnx", "bench"]
    assert all(len(c) == 1 and c[0].tag == "system-out" for c in stages.values())
    root = ET.fromstring(junit_first.encode())
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "1", "0")
    # the Markdown names the failed gate; the second run appended its own summary
    md = (tmp_path / "summary.md").read_text()
    assert md.count("1 of 3 gate(s) failed: **teacher_onnx.size_bytes**") == 2
    assert "| teacher_onnx.size_bytes | <= 1 |" in md and "❌ **FAIL**" in md
    assert "`teacher` train ran" in md and "`teacher` train cached" in md
    assert "| `teacher_onnx` * |" in md  # the bench's summary table
    # --json: stdout is the JSON summary alone; the tables went to stderr
    doc = json.loads(first.stdout)
    assert doc["status"] == "gates_failed" and doc["exit_code"] == 1
    assert [g["passed"] for g in doc["gates"]] == [True, False, True]
    assert doc["models"][0]["model"] == "teacher_onnx" and doc["junit"].endswith("junit.xml")
    assert "teacher_onnx.size_bytes" in first.stderr and "FAIL" in first.stderr


def test_failed_stage_is_an_error_case_and_later_stages_are_skipped(write_yaml, tmp_path,
                                                                   monkeypatch):
    # setup: ONNX Runtime's logits shifted by 1.0 before the parity check compares them, so the
    # export fails its parity check whatever the CPU rounds (a tolerance of 1e-12 did not: on an
    # AVX-512 machine PyTorch and ORT agreed exactly and the stage passed)
    from compress.measure import ort as ort_measure

    real_predict = ort_measure.predict
    monkeypatch.setattr(ort_measure, "predict", lambda *a, **k: real_predict(*a, **k) + 1.0)
    pipeline = copy.deepcopy(TINY_PIPELINE)
    pipeline["gates"] = {"min_accuracy_pct": 10}
    # execute
    res = _run(write_yaml, tmp_path, pipeline, "--json")
    # assert: exit 2 with the one-line error; the JUnit file says where and why
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")
    stages = _cases(tmp_path / "reports" / "junit.xml")["compress.tiny.stages"]
    assert stages["teacher"].find("error") is None and stages["teacher"].find("skipped") is None
    error = stages["teacher_onnx"].find("error")
    assert error is not None and error.get("type") == "ParityError"
    assert stages["bench"].find("skipped") is not None
    gates = _cases(tmp_path / "reports" / "junit.xml")["compress.tiny.gates"]
    assert gates["gates"].find("skipped") is not None
    md = (tmp_path / "summary.md").read_text()
    assert "stage `teacher_onnx` failed" in md and "Gates: not checked" in md
    doc = json.loads(res.stdout)
    assert (doc["status"], doc["failed_stage"], doc["exit_code"]) == ("error", "teacher_onnx", 2)


def test_interrupted_run_still_writes_its_reports(write_yaml, tmp_path, monkeypatch):
    # setup: Ctrl-C arrives while the bench stage runs
    from compress import runner

    real = runner.execute_stage

    def interrupt_bench(cfg, ctx, final_dir):
        if cfg.stage == "bench":
            raise KeyboardInterrupt
        return real(cfg, ctx, final_dir)

    monkeypatch.setattr(runner, "execute_stage", interrupt_bench)
    # execute
    res = _run(write_yaml, tmp_path, copy.deepcopy(TINY_PIPELINE))
    # assert: exit 130; the stages before it passed, the bench is the interrupted case
    assert res.exit_code == 130, res.output
    stages = _cases(tmp_path / "reports" / "junit.xml")["compress.tiny.stages"]
    assert stages["teacher_onnx"].find("error") is None
    assert stages["bench"].find("error").get("type") == "Interrupted"
    assert "interrupted in stage `bench`" in (tmp_path / "summary.md").read_text()
