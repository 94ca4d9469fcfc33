"""CI reports from a finished run folder: JUnit counts add up, the Markdown carries the gates,
the bench summary and the stages; the Markdown writer appends."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from compress.report.ci import (
    append_markdown,
    junit_xml,
    outcome_from_folder,
    summary_json,
    summary_markdown,
)


def test_reports_of_a_finished_run(tiny_run):
    # setup
    root, _ = tiny_run
    # execute
    outcome = outcome_from_folder(root)
    xml = ET.fromstring(junit_xml(outcome))
    md = summary_markdown(outcome)
    doc = summary_json(outcome)
    # assert: the tiny pipeline has no gates: three passing stage cases, no gate suite
    assert [s.get("name") for s in xml] == ["compress.tiny.stages"]
    assert (xml.get("tests"), xml.get("failures"), xml.get("errors")) == ("3", "0", "0")
    assert md.startswith("## ✅ compress `tiny`: ran (no gates)")
    assert "| `teacher_onnx` * |" in md and "`bench` bench ran" in md
    assert doc["status"] == "passed" and doc["exit_code"] == 0
    assert [s["status"] for s in doc["stages"]] == ["ran", "ran", "ran"]


def test_markdown_is_appended_to_an_existing_file(tmp_path):
    # setup
    path = tmp_path / "step_summary.md"
    path.write_text("earlier step\n")
    # execute
    append_markdown(path, "## first\n")
    append_markdown(path, "## second\n")
    # assert
    assert path.read_text() == "earlier step\n\n## first\n\n## second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["step_summary.md"]
