"""The study's storage: a journal file by default, any Optuna URL for shared studies. The
PostgreSQL test starts a throwaway server (Debian's postgresql, initdb + pg_ctl in a temp folder
on a free port) and is skipped where it is not installed."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from compress.errors import ConfigError
from compress.search.study import load_study, make_sampler, open_storage, redact


def test_a_journal_in_a_missing_folder_is_refused_naming_it(tmp_path):
    # setup / execute
    with pytest.raises(ConfigError, match="does not exist"):
        open_storage(str(tmp_path / "nowhere" / "study.journal"))
    # assert
    assert list(tmp_path.iterdir()) == []


def test_a_study_remembers_its_space(tmp_path):
    # setup
    storage = open_storage(str(tmp_path / "s.journal"))
    load_study(storage, "s", "a" * 64, make_sampler("tpe", 0, 8), "here")
    # execute / assert
    with pytest.raises(ConfigError, match="different space"):
        load_study(storage, "s", "b" * 64, make_sampler("tpe", 0, 8), "here")
    assert load_study(storage, "s", "a" * 64, make_sampler("random", 0, 8), "here")


def test_passwords_never_reach_a_message():
    # setup / execute / assert
    assert redact("postgresql://u:pw@h:5/db") == "postgresql://u:***@h:5/db"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server; its URL. Run as user postgres when the tests run as root
    (initdb refuses root), in a folder of its own under /tmp (pytest's is private to root)."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = Path(initdb[-1]).parent
    pytest.importorskip("psycopg2")
    folder = Path(tempfile.mkdtemp(prefix="compress-pg-"))
    data, port = folder / "pg", _free_port()
    prefix = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*prefix, bin_dir / "pg_ctl", "-D", data, "-l", data / "log", "-w", "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _work(url: str, n: int) -> None:
    from compress.search.study import load_study, make_sampler, open_storage

    study = load_study(open_storage(url), "shared", "c" * 64, make_sampler("tpe", os.getpid(), 8),
                       "worker")

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.05)
        return x, 1 - x

    study.optimize(objective, n_trials=n)


@pytest.mark.slow
def test_two_worker_processes_share_one_study_in_postgresql(postgres):
    # setup
    import multiprocessing as mp

    # the tables and the study made once, as the stage does before it starts its workers
    load_study(open_storage(postgres), "shared", "c" * 64, make_sampler("tpe", 0, 8), "test")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_work, args=(postgres, 5)) for _ in range(2)]
    # execute
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    # assert
    import optuna

    study = optuna.load_study(study_name="shared", storage=open_storage(postgres))
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(study.trials) == 10
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2
