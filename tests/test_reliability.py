"""Interrupted runs and determinism: a real `compress run` killed (SIGKILL) or stopped (SIGINT)
in the middle of a stage keeps every earlier artifact and no half-written file, a second run of
the same pipeline meanwhile is refused, the next run resumes and ends where an uninterrupted run
ends; the same pipeline and seeds give the same metrics twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from compress.cli import cli
from compress.config import load_pipeline
from compress.runner import run_pipeline
from tests.conftest import CLI_ENV, REPO, TINY_PIPELINE, cli_command

# `student` is a user model (GATE_MODEL) whose first training step tells the test it is inside
# the training loop and then waits for the test's word: the test freezes the run there with
# SIGSTOP (a handshake, not a sleep), so what follows does not depend on the machine's speed.
KILL_PIPELINE = {
    **TINY_PIPELINE,
    "name": "kill",
    "stages": [
        TINY_PIPELINE["stages"][0],  # teacher
        {"id": "student", "stage": "train",
         "model": {"arch": "python", "factory": "gate_model:build", "kwargs": {"inputs": 64}},
         "epochs": 20, "batch_size": 64, "patience": None, "device": "cpu", "seed": 1},
        {"id": "student_onnx", "stage": "export", "input": "student", "parity_samples": 64},
    ],
}
GATE_MODEL = '''"""An MLP whose first training forward pass writes `in_loop` beside this file,
then waits until `go` exists there (tests/test_reliability.py's handshake). Evaluation never
waits."""
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent


class GatedMLP(torch.nn.Sequential):
    def forward(self, x):
        if self.training and not (HERE / "go").exists():
            (HERE / "in_loop").touch()
            while not (HERE / "go").exists():
                time.sleep(0.01)
        return super().forward(x)


def build(inputs):
    return GatedMLP(torch.nn.Flatten(), torch.nn.Linear(inputs, 64), torch.nn.ReLU(),
                    torch.nn.Linear(64, 10))
'''
# Files that record measured times, so differ from run to run.
TIMED = ("metrics.json", "bench.json", "bench.md")
TEACHER_FILES = {"teacher/model.pt", "teacher/history.json", "teacher/metrics.json"}


# One intra-op thread, here and in the subprocess: on a busy machine torch's thread pool makes
# these tiny models ten times slower or worse, and what is tested does not depend on threads.
ONE_THREAD_ENV = {**CLI_ENV, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(*argv: str):
    return CliRunner().invoke(cli, list(argv), prog_name="compress")


def _terminal_sigint() -> None:
    # A run started from a terminal gets Ctrl-C; one started by a shell in the background
    # (`make test &`, some CI runners) inherits SIGINT ignored, and the Ctrl-C test would then
    # see the run carry on to exit 0.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(pipeline: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([*cli_command(), "run", str(pipeline), "--out", str(out),
                             "--no-progress", "--trust-code"], cwd=REPO, env=ONE_THREAD_ENV,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_terminal_sigint)


def freeze_in_stage(proc: subprocess.Popen, root: Path, stage_id: str, gate: Path) -> Path:
    """Wait until the run is inside `stage_id`'s training loop (GATE_MODEL wrote `in_loop` in
    folder `gate` and waits there), freeze it with SIGSTOP, let the gate open for whatever runs
    next, and return the staging folder."""
    staging = root / f".staging-{stage_id}-{proc.pid}"
    deadline = time.monotonic() + 300
    while not (gate / "in_loop").exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before stage {stage_id}: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"stage {stage_id} did not start within 300 s")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGSTOP)
    (gate / "go").touch()  # the run is stopped: the gate is open only for the runs that follow
    # still mid-stage: the stage has not been renamed into place
    assert staging.is_dir() and not (root / stage_id).exists()
    return staging


def files_outside_staging(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).parts[0].startswith(".staging-")}


def snapshot_outside_staging(root: Path) -> dict[str, tuple[int, int]]:
    return {rel: ((root / rel).stat().st_size, (root / rel).stat().st_mtime_ns)
            for rel in files_outside_staging(root)}


def stable(manifest: dict) -> dict:
    """Per stage: metrics and output hashes, without what measures time (or embeds it)."""
    out = {}
    for sid, entry in manifest["stages"].items():
        metrics = {k: v for k, v in entry["metrics"].items()
                   if not any(t in k for t in ("wall", "cpu_time", "energy", "co2e", "memory",
                                               "limit"))
                   and not k.endswith(("_ms", ".runs"))}
        hashes = {rel: m["sha256"] for rel, m in entry["outputs"].items()
                  if not rel.endswith(TIMED)}
        out[sid] = {"metrics": metrics, "outputs": hashes}
    return out


@pytest.fixture
def kill_pipeline(write_yaml) -> Path:
    path = write_yaml(KILL_PIPELINE, "kill.yaml")
    (path.parent / "gate_model.py").write_text(GATE_MODEL)
    return path


def test_sigkill_mid_stage_keeps_finished_stages_and_the_rerun_resumes(kill_pipeline, tmp_path):
    # setup: a real run, caught while `student` trains
    root = tmp_path / "killed" / "kill"
    proc = start_run(kill_pipeline, tmp_path / "killed")
    staging = freeze_in_stage(proc, root, "student", kill_pipeline.parent)
    # execute: a second run of the same pipeline meanwhile, then SIGKILL
    before = snapshot_outside_staging(root)
    second = invoke("run", str(kill_pipeline), "--out", str(tmp_path / "killed"), "--trust-code")
    assert snapshot_outside_staging(root) == before
    proc.kill()
    proc.communicate()
    # assert: refused while the first held the folder; killed mid-stage, nothing half-written
    assert second.exit_code == 2 and "another compress run is using this output folder" in \
        second.stderr
    assert proc.returncode == -signal.SIGKILL
    assert staging.is_dir() and not (root / "student").exists()
    assert files_outside_staging(root) == TEACHER_FILES | {"manifest.json", ".lock"}
    manifest = json.loads((root / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["teacher"]
    assert invoke("verify", str(root)).exit_code == 0

    # execute: rerun, and an uninterrupted run elsewhere for comparison
    resumed = invoke("run", str(kill_pipeline), "--out", str(tmp_path / "killed"), "--no-progress",
                     "--trust-code")
    clean = run_pipeline(load_pipeline(kill_pipeline), tmp_path / "clean", progress=False,
                         log=lambda m: None, trust_code=True)
    # assert: teacher came from the cache, the rest ran, all verifies, and the results are
    # those of the uninterrupted run
    assert resumed.exit_code == 0, resumed.output
    assert "[teacher] cached" in resumed.stderr and "[student] running train" in resumed.stderr
    assert "ran 2 stage(s), 1 cached" in resumed.stdout
    assert not list(root.glob(".staging-*"))
    verified = invoke("verify", str(root))
    # every file the manifest lists (model.json beside the ONNX file included), all intact
    files = sum(len(st["outputs"]) for st in
                json.loads((root / "manifest.json").read_text())["stages"].values())
    assert files == 9 and verified.exit_code == 0
    assert f"{files} of {files} file(s) match the manifest" in verified.stdout
    after = json.loads((root / "manifest.json").read_text())
    assert after["stages"]["teacher"]["status"] == "cached"
    assert stable(after) == stable(clean.manifest)


def test_ctrl_c_mid_stage_stops_cleanly_with_exit_130(kill_pipeline, tmp_path):
    # setup
    root = tmp_path / "kill"
    proc = start_run(kill_pipeline, tmp_path)
    freeze_in_stage(proc, root, "student", kill_pipeline.parent)
    # execute: Ctrl-C reaches the run in the middle of the stage
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGCONT)
    _, stderr = proc.communicate(timeout=60)
    # assert: a message, exit 130, the staging folder removed, the teacher kept and verified
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == \
        "interrupted: finished stages are kept; rerun to resume"
    assert "Traceback" not in stderr
    assert files_outside_staging(root) == TEACHER_FILES | {"manifest.json", ".lock"}
    assert not list(root.glob(".staging-*"))
    assert invoke("verify", str(root)).exit_code == 0


def test_smoke_pipeline_twice_gives_identical_metrics_and_records_seeds(tmp_path):
    # setup
    cfg = load_pipeline(REPO / "pipelines" / "smoke.yaml")
    # execute
    first = run_pipeline(cfg, tmp_path / "a", progress=False, log=lambda m: None)
    second = run_pipeline(cfg, tmp_path / "b", progress=False, log=lambda m: None)
    # assert: every metric but timings, and the bytes of every artifact, are the same
    assert first.ran == second.ran == ["teacher", "teacher_onnx", "bench"]
    assert stable(first.manifest) == stable(second.manifest)
    assert stable(first.manifest)["bench"]["metrics"]["teacher_onnx.accuracy_pct"] == \
        first.manifest["stages"]["teacher_onnx"]["metrics"]["ort_test_accuracy_pct"]
    # and the manifest and report say which seeds and library versions gave them
    manifest = json.loads((tmp_path / "a" / "smoke" / "manifest.json").read_text())
    raw = yaml.safe_load((REPO / "pipelines" / "smoke.yaml").read_text())
    assert manifest["seeds"] == {"data": raw["data"]["seed"], "teacher": 0}
    assert {"python", "torch", "onnx", "onnxruntime", "numpy", "scikit-learn"} <= \
        set(manifest["versions"])
    report = (tmp_path / "a" / "smoke" / "report.md").read_text()
    assert "Seeds: data 0, teacher 0." in report and "onnxruntime " in report
