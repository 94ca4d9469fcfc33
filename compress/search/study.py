"""The Optuna study of a search: its storage (by default a journal file in the search's cache
folder; any Optuna storage URL, `postgresql://...`, `sqlite:///...`, or a journal file on a
shared disk, for several workers or machines), the sampler, and the checks that a study is the
one this search means (same space, same objectives)."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

from compress.errors import ConfigError

DIRECTIONS = ["maximize", "minimize"]  # val accuracy (pct), p50 latency (ms)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def is_url(storage: str) -> bool:
    return "://" in storage


def open_storage(storage: str, heartbeat: bool = True):
    """An Optuna storage: a URL (RDB) or a path (journal file); ConfigError naming it when it
    cannot be reached. A shared storage gets heartbeats, so a trial whose worker died is
    failed and retried by the next worker rather than left RUNNING for ever."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not is_url(storage):
        path = Path(storage)
        if not path.parent.is_dir():
            raise ConfigError(f"storage '{storage}': folder {path.parent} does not exist; "
                              "create it or name another journal file")
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as e:
            raise ConfigError(f"storage '{storage}': cannot open the journal file "
                              f"({e.strerror}); check the path and its permissions") from e
    kwargs = {}
    given, storage = storage, _with_driver(storage)  # messages name the URL as given
    if storage.startswith("postgresql"):
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 5}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat:
            kwargs.update(heartbeat_interval=10, grace_period=30,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                              max_retry=1))
        for attempt in range(3):
            try:
                return RDBStorage(storage, **kwargs)
            except Exception as e:  # OperationalError, ArgumentError, a missing driver
                # Workers starting at once race to create the tables: the loser retries.
                if "UniqueViolation" in str(e) and attempt < 2:
                    time.sleep(1 + attempt)
                    continue
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else \
                    type(e).__name__
                raise ConfigError(f"storage '{redact(given)}': cannot be reached ({first}); "
                                  "check the server, the URL and its driver (postgresql: pip "
                                  "install psycopg2-binary)") from e
    raise AssertionError("unreachable")


def _with_driver(url: str) -> str:
    """`postgresql://` names no driver and SQLAlchemy 2 then wants psycopg 3; where only
    psycopg2 is installed (what the `postgres` extra installs), name it."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def make_sampler(name: str, seed: int, trials: int):
    """A seeded multi-objective sampler: TPE (default), NSGA-II or random."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        # A population of a quarter of the budget (at least 4): with Optuna's default of 50, a
        # budget of a few dozen trials would never leave the random first generation.
        return optuna.samplers.NSGAIISampler(population_size=max(4, trials // 4), seed=seed)
    # Constraints reach the samplers through trial.set_constraint (compress.search.trial).
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 3)),
                                      multivariate=True)


def load_study(storage, name: str, space_sha256: str, sampler, where: str):
    """The study `name` in `storage`, created if new; ConfigError if it belongs to another
    search (a different space or objectives)."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                directions=DIRECTIONS, load_if_exists=True)
    theirs = study.user_attrs.get("space_sha256")
    if theirs is None:
        study.set_user_attr("space_sha256", space_sha256)
    elif theirs != space_sha256:
        raise ConfigError(f"{where}: study '{name}' already holds a search over a different "
                          f"space (space sha256 {theirs[:12]}..., this one {space_sha256[:12]}"
                          "...); give this search another study_name, or the same space")
    if [d.name.lower() for d in study.directions] != DIRECTIONS:
        raise ConfigError(f"{where}: study '{name}' has other objectives; use another "
                          "study_name")
    return study


def fail_stale(study) -> list[int]:
    """Trials left RUNNING by a killed process, failed so that their configurations are drawn
    again (the trial cache makes the rerun free where the trial had finished its work). Only
    for the default journal in the cache folder, which no live worker shares: the runner's
    folder lock guarantees it."""
    from optuna.trial import TrialState

    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
        failed.append(t.number)
    return failed
