"""The CLI end to end, in a subprocess as a user runs it: smoke pipeline, stage commands,
one-line errors with exit 2, gate failures with exit 1."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import REPO, run_cli, tree_snapshot


def test_smoke_pipeline_end_to_end(tmp_path):
    # execute
    first = run_cli("run", "pipelines/smoke.yaml", "--out", str(tmp_path), "--no-progress")
    second = run_cli("run", "pipelines/smoke.yaml", "--out", str(tmp_path), "--no-progress")
    ci = run_cli("run", "pipelines/smoke.yaml", "--out", str(tmp_path), "--no-progress", "--json",
                 "--junit", str(tmp_path / "junit.xml"), "--summary-md", str(tmp_path / "s.md"))
    # assert
    assert first.returncode == 0, first.stderr
    assert "| `teacher_onnx` |" in first.stdout and "ran 3 stage(s), 0 cached" in first.stdout
    assert second.returncode == 0 and "ran 0 stage(s), 3 cached" in second.stdout
    root = tmp_path / "smoke"
    assert (root / "teacher_onnx" / "model.onnx").is_file()
    assert "## Benchmark `bench`" in (root / "report.md").read_text()
    manifest = json.loads((root / "manifest.json").read_text())
    assert all(g["passed"] for g in manifest["gates"])
    # as CI runs it: JSON alone on stdout, every gate a passing JUnit case, a ✅ summary
    assert ci.returncode == 0, ci.stderr
    doc = json.loads(ci.stdout)
    assert doc["status"] == "passed" and len(doc["gates"]) == len(manifest["gates"])
    junit = (tmp_path / "junit.xml").read_text()
    assert 'failures="0" errors="0"' in junit and "compress.smoke.gates" in junit
    summary = (tmp_path / "s.md").read_text()
    assert summary.startswith("## ✅ compress `smoke`: all 2 gate(s) passed")


def test_report_command_rewrites_the_report(tiny_run):
    root, _ = tiny_run
    (root / "report.md").unlink()
    res = run_cli("report", str(root))
    assert res.returncode == 0 and "## Benchmark `bench`" in res.stdout
    assert (root / "report.md").read_text() == res.stdout.rstrip("\n") + "\n"


def test_validate(tmp_path):
    res = run_cli("validate", "pipelines/digits.yaml")
    assert res.returncode == 0 and "ok: pipeline 'digits'" in res.stdout


@pytest.mark.parametrize("command", ["", "run", "validate", "train", "export", "bench", "report"])
def test_every_command_has_help(command):
    res = run_cli(*([command] if command else []), "--help")
    assert res.returncode == 0 and "Usage:" in res.stdout


def _bad_pipeline(tmp_path, mutate):
    raw = yaml.safe_load((REPO / "pipelines" / "smoke.yaml").read_text())
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BAD = [
    ("unknown_key", lambda p: p["stages"][0].update(epochz=1), "stage 'teacher', field 'epochz'"),
    ("wrong_type", lambda p: p["stages"][0].update(batch_size="big"),
     "stage 'teacher', field 'batch_size'"),
    ("dangling", lambda p: p["stages"][1].update(input="ghost"),
     "stage 'teacher_onnx', field 'input': stage 'ghost' does not exist"),
]


@pytest.mark.parametrize("name,mutate,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_yaml_exits_2_with_one_line_and_writes_nothing(tmp_path, name, mutate, needle):
    # setup
    path = _bad_pipeline(tmp_path, mutate)
    out = tmp_path / "out"
    # execute
    res = run_cli("run", str(path), "--out", str(out))
    # assert
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert needle in lines[0] and "Traceback" not in res.stderr
    assert tree_snapshot(out) == {}


def test_debug_shows_the_traceback(tmp_path):
    path = _bad_pipeline(tmp_path, BAD[0][1])
    res = run_cli("--debug", "validate", str(path))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_failing_gate_exits_1_with_a_table(tmp_path):
    # setup
    def impossible(p):
        p["gates"] = {"min_accuracy_pct": 100.0}
        p["stages"][0]["epochs"] = 1

    path = _bad_pipeline(tmp_path, impossible)
    # execute
    res = run_cli("run", str(path), "--out", str(tmp_path / "out"), "--no-progress")
    # assert
    assert res.returncode == 1
    assert "gate" in res.stderr and "FAIL" in res.stderr and ">= 100 %" in res.stderr
    assert "gates failed: 1 of 1" in res.stderr


def test_stage_commands_chain_on_their_own(tmp_path):
    # execute
    tr = run_cli("train", "--data", "digits", "--out", str(tmp_path / "t"), "--model",
                 "{arch: mlp, hidden: [16]}", "--epochs", "2", "--device", "cpu",
                 "--patience", "null")
    ex = run_cli("export", str(tmp_path / "t" / "model.pt"), "--out", str(tmp_path / "e"))
    be = run_cli("bench", str(tmp_path / "e" / "model.onnx"), "--out", str(tmp_path / "b"),
                 "--batch-sizes", "1", "--min-runs", "5", "--min-time-s", "0")
    # assert
    assert tr.returncode == 0, tr.stderr
    assert "epochs_run: 2" in tr.stdout
    assert ex.returncode == 0, ex.stderr
    assert "ort_test_accuracy_pct" in ex.stdout
    assert be.returncode == 0, be.stderr
    bench = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert list(bench["models"]) == ["e"] and list(bench["models"]["e"]["latency"]) == ["b1_t1"]


def test_stage_command_option_errors_name_the_option(tmp_path):
    res = run_cli("train", "--data", "digits", "--out", str(tmp_path / "t"), "--lr", "-3")
    assert res.returncode == 2 and "option --lr" in res.stderr and "greater than 0" in res.stderr
    res = run_cli("export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "e"))
    assert res.returncode == 2 and "checkpoint not found" in res.stderr
    assert not (tmp_path / "t").exists() and not (tmp_path / "e").exists()


def test_bench_command_takes_peers_and_a_power_model_as_paths_and_options(tiny_run, tmp_path):
    # setup
    root, _ = tiny_run
    onnx_path, ckpt = root / "teacher_onnx" / "model.onnx", root / "teacher" / "model.pt"
    # execute
    res = run_cli("bench", str(onnx_path), "--out", str(tmp_path / "b"), "--batch-sizes", "1",
                  "--min-runs", "5", "--min-time-s", "0", "--no-memory", "--energy-time-s",
                  "0.1", "--peers", f"{{checkpoint: {ckpt}, onnx: {onnx_path}}}",
                  "--watts-per-core", "5")
    # assert
    assert res.returncode == 0, res.stderr
    bench = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert list(bench["models"]) == ["teacher_onnx", "peer_torch_fp32", "peer_ort_static",
                                     "peer_ort_careful", "peer_ort_dynamic"]
    energy = bench["models"]["teacher_onnx"]["energy"]["b1_t1"]
    assert energy["power_model"]["watts_per_core"] == 5.0
