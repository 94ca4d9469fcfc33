"""Stage `search` end to end on digits with tiny trials (an MLP of 8 or 16 units, 1 or 2
epochs): the pick and its files, the trial cache on a rerun, resume after SIGKILL through
`compress run`, two worker processes on one study, and every bad input."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from compress import artifacts
from compress.errors import ConfigError, GateError
from tests.conftest import CLI_ENV, REPO, cli_command, run_cli

SPACE = {"model": {"arch": "mlp", "hidden": {"choices": [[8], [16]]}},
         "epochs": {"choices": [1, 2]}, "int8": "off"}
TINY = {"trials": 4, "short_fraction": 0, "latency_time_s": 0.01, "batch_size": 128,
        "lr": 0.01, "device": "cpu", "max_val_accuracy_drop_pts": 100}


def _search(teacher: Path, out: Path, **options):
    import compress

    data = artifacts.load_checkpoint(teacher)["data"]
    return compress.search(teacher, data, space=options.pop("space", SPACE), out=out,
                           **{**TINY, **options})


@pytest.fixture(scope="module")
def searched(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "search"
    return _search(tiny_checkpoint, out, cache_dir=str(out.parent / "cache")), out


def test_four_tiny_trials_give_a_front_and_a_usable_pick(searched):
    # setup
    result, out = searched
    # execute
    front = artifacts.read_json(out / "front.json")
    ckpt = artifacts.load_checkpoint(result.path)
    rows = (out / "trials.csv").read_text().strip().splitlines()
    # assert
    assert result.metrics["trials_finished"] == 4
    assert len(rows) == 1 + 4
    assert front["pick"]["p50_ms"] == min(t["p50_ms"] for t in front["front"])
    assert ckpt["model"]["arch"] == "mlp" and ckpt["model"]["hidden"] in ([8], [16])
    assert (out / "front.png").stat().st_size > 1000
    steps = yaml.safe_load((out / "pick.yaml").read_text())
    assert [s["stage"] for s in steps] == ["distill", "export"]
    assert steps[0]["model"]["hidden"] == ckpt["model"]["hidden"]
    assert artifacts.read_json(out.parent / "cache" / "best.json")["pick"]["hash"] == \
        front["pick"]["hash"]


def test_a_rerun_with_the_same_space_is_served_from_the_trial_cache(searched, tiny_checkpoint):
    # setup: a new study (another name) over the same space and the same trial cache
    _, out = searched
    trials = out.parent / "cache" / "trials"
    before = {p.name: p.stat().st_mtime_ns for p in trials.glob("*/trial.json")}
    # execute
    again = _search(tiny_checkpoint, out.parent / "again", cache_dir=str(out.parent / "cache"),
                    study_name="another")
    # assert
    rows = artifacts.read_json(out.parent / "again" / "front.json")["front"]
    assert all(r["cached"] for r in rows)
    assert {p.name: p.stat().st_mtime_ns for p in trials.glob("*/trial.json")} == before
    assert again.metrics["trials_finished"] == 4


def test_two_searches_with_different_spaces_cannot_share_a_study(searched, tiny_checkpoint,
                                                                 tmp_path):
    # setup
    _, out = searched
    other = copy.deepcopy(SPACE)
    other["epochs"] = {"choices": [1, 3]}
    # execute
    with pytest.raises(ConfigError, match="different space"):
        _search(tiny_checkpoint, tmp_path / "x", space=other, study_name="another",
                cache_dir=str(out.parent / "cache"))
    # assert
    assert not (tmp_path / "x").exists()


def test_a_constraint_no_trial_meets_ends_with_exit_1_and_keeps_the_trials(tiny_checkpoint,
                                                                         tmp_path):
    # setup
    options = {**TINY, "max_val_accuracy_drop_pts": None, "min_val_accuracy_pct": 100.0,
               "trials": 1, "cache_dir": str(tmp_path / "cache")}
    # execute
    with pytest.raises(GateError, match="no trial reached val accuracy 100.00 %") as e:
        _search(tiny_checkpoint, tmp_path / "out", **options)
    # assert
    assert e.value.exit_code == 1
    assert not (tmp_path / "out").exists()
    best = artifacts.read_json(tmp_path / "cache" / "best.json")
    assert best["finished_trials"] == 1 and best["pick"] is None and best["front"]


def test_an_unreachable_storage_is_named_and_nothing_is_written(tiny_checkpoint, tmp_path):
    # setup
    url = "postgresql://someone:secret@127.0.0.1:1/nodb"
    # execute
    with pytest.raises(ConfigError) as e:
        _search(tiny_checkpoint, tmp_path / "out", storage=url)
    # assert
    assert "storage 'postgresql://someone:***@127.0.0.1:1/nodb': cannot be reached" in str(e.value)
    assert "secret" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, words", [
    ({"trials": 0}, "argument 'trials'"),
    ({"space": {"model": {"arch": "mlp", "hidden": {"choices": [[8]]}}}}, "at least two"),
    ({"space": {"model": {"arch": "mlp", "hiden": {"choices": [[8], [9]]}}}}, "unknown field"),
    ({"space": {"model": {"arch": "mlp", "dropout": {"low": 0.5, "high": 0.1}}}}, "inverted"),
    ({"min_val_accuracy_pct": 50.0}, "one constraint"),
])
def test_bad_options_are_one_line_errors_before_anything_is_written(tiny_checkpoint, tmp_path,
                                                                    option, words):
    # setup / execute
    with pytest.raises(ConfigError, match=words):
        _search(tiny_checkpoint, tmp_path / "out", **option)
    # assert
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_space_exits_2_with_one_line(tiny_checkpoint, tmp_path):
    # setup / execute
    r = run_cli("search", str(tiny_checkpoint), "--out", str(tmp_path / "out"),
                "--space", "{model: {arch: mlp, hidden: {low: 8, high: 8}}}")
    # assert
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "is empty" in r.stderr
    assert not (tmp_path / "out").exists()


def _pipeline(tmp_path: Path, trials: int) -> Path:
    stage = {"id": "search", "stage": "search", "teacher": "teacher", "space": SPACE,
             **{**TINY, "trials": trials}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({
        "name": "s", "data": {"source": "digits", "seed": 0},
        "stages": [{"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [32]},
                    "epochs": 2, "batch_size": 128, "lr": 0.01, "device": "cpu"}, stage]}))
    return path


@pytest.mark.slow
def test_a_killed_search_resumes_through_compress_run_without_redoing_trials(tmp_path):
    # setup: a search of 6 trials, killed with SIGKILL once two trials are on disk
    pipeline = _pipeline(tmp_path, 6)
    out = tmp_path / "out"
    trials = out / "s" / ".cache" / "search" / "search" / "trials"
    proc = subprocess.Popen([*cli_command(), "run", str(pipeline), "--out", str(out)],
                            cwd=REPO, env=CLI_ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(list(trials.glob("*/trial.json"))) < 2 and time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("the search finished before it could be killed")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in trials.glob("*/trial.json")}
    # execute
    r = run_cli("run", str(pipeline), "--out", str(out), timeout=400)
    # assert
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((out / "s" / "manifest.json").read_text())["stages"]["search"]
    assert metrics["metrics"]["trials_finished"] == 6
    after = {p.parent.name: p.stat().st_mtime_ns for p in trials.glob("*/trial.json")}
    assert {k: after[k] for k in before} == before  # nothing finished was redone


@pytest.mark.slow
def test_two_worker_processes_share_one_study(tiny_checkpoint, tmp_path):
    # setup: two `compress search` processes on one journal file and one study name
    journal = tmp_path / "study.journal"
    args = ["search", str(tiny_checkpoint), "--space", json.dumps(SPACE), "--storage",
            str(journal), "--study-name", "shared", "--trials", "6", "--short-fraction", "0",
            "--latency-time-s", "0.01", "--batch-size", "128", "--lr", "0.01",
            "--device", "cpu", "--max-val-accuracy-drop-pts", "100"]
    # execute
    procs = [subprocess.Popen([*cli_command(), *args, "--out", str(tmp_path / f"w{i}"),
                               "--cache-dir", str(tmp_path / "cache")],
                              cwd=REPO, env=CLI_ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=400) for p in procs]
    # assert
    assert [p.returncode for p in procs] == [0, 0], [r[1][-1500:] for r in results]
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="shared",
                              storage=JournalStorage(JournalFileBackend(str(journal))))
    done = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert 6 <= len(done) <= 7  # the budget is shared (a race may add one)
    assert len({t.user_attrs["pid"] for t in done}) == 2
