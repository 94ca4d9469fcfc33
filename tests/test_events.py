"""compress.events: the runner reports each stage as a typed event, in order, and the console
line is derived from the event (nothing parses log lines back)."""

from __future__ import annotations

import copy

from compress.config import parse_pipeline
from compress.events import (
    GatesChecked,
    StageCached,
    StageFailed,
    StageFinished,
    StageStarted,
    console_line,
)
from compress.runner import run_pipeline
from tests.conftest import TINY_PIPELINE


def _tiny(gates=None) -> dict:
    pipeline = copy.deepcopy(TINY_PIPELINE)
    pipeline["stages"] = pipeline["stages"][:2]  # train + export: what the events need
    if gates:
        pipeline["gates"] = gates
    return pipeline


def test_a_run_emits_started_finished_then_cached_and_gates(tmp_path):
    # setup
    cfg = parse_pipeline(_tiny({"metrics": [{"metric": "teacher_onnx.size_bytes", "min": 1}]}),
                         "tiny.yaml")
    first, second, lines = [], [], []
    # execute: once from scratch, once from the cache
    run_pipeline(cfg, tmp_path, progress=False, log=lines.append, on_event=first.append)
    run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None, on_event=second.append)
    # assert
    assert [type(e) for e in first] == [StageStarted, StageFinished, StageStarted,
                                        StageFinished, GatesChecked]
    assert [e.stage_id for e in first[:4]] == ["teacher", "teacher", "teacher_onnx",
                                              "teacher_onnx"]
    assert "test_accuracy_pct" in first[1].metrics and first[1].wall_time_s > 0
    assert first[-1].results[0]["passed"] and not first[-1].failed
    assert [type(e) for e in second] == [StageCached, StageCached, GatesChecked]
    assert lines[0] == "[teacher] running train ..." and lines[1].startswith("[teacher] done in")


def test_a_failing_stage_emits_failed_with_its_error(tmp_path, monkeypatch):
    # setup: the export's ORT logits shifted so its parity check fails
    from compress.measure import ort as ort_measure

    real = ort_measure.predict
    monkeypatch.setattr(ort_measure, "predict", lambda *a, **k: real(*a, **k) + 1.0)
    cfg = parse_pipeline(_tiny(), "tiny.yaml")
    events = []
    # execute
    try:
        run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None, on_event=events.append)
    except Exception as e:  # noqa: BLE001  (asserted below)
        raised = e
    # assert
    failed = [e for e in events if isinstance(e, StageFailed)]
    assert len(failed) == 1 and failed[0].stage_id == "teacher_onnx"
    assert failed[0].error is raised and type(raised).__name__ == "ParityError"
    assert console_line(failed[0]) is None  # the command prints the error once, itself
