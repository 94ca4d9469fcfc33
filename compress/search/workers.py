"""Search workers: each opens the study in its storage and runs trials until the shared budget
(finished trials of the study, from every worker and machine) or its time is spent. With
`workers: N` the stage runs one in its own process and N - 1 more as spawned processes; on other
machines the same command, pointed at the same storage and study, adds more."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

from compress.search.study import is_url, load_study, make_sampler, open_storage

FINISHED = ("COMPLETE", "PRUNED")


def load_teacher(path: str, kind: str, input_shape: list[int]):
    """The teacher as a module: a checkpoint rebuilt, or an ONNX model run in ORT."""
    if kind == "onnx":
        from compress.trainer.ort_teacher import OrtTeacher

        return OrtTeacher(path)
    from compress.trainer.distillation import load_model

    return load_model(Path(path), input_shape, role="teacher checkpoint")[0]


def finished(study) -> int:
    from optuna.trial import TrialState

    states = tuple(getattr(TrialState, s) for s in FINISHED)
    return len(study.get_trials(deepcopy=False, states=states))


def open_study(job: dict, worker: int = 0):
    storage = open_storage(job["storage"], heartbeat=is_url(job["storage"]))
    cfg = job["cfg"]
    # Workers must not draw alike: on a storage shared with other machines every process is
    # some machine's worker 0, so the process id tells them apart there (a single-process
    # search on the default journal stays reproducible).
    seed = cfg.seed + worker + (os.getpid() if cfg.storage is not None else 0)
    sampler = make_sampler(cfg.sampler, seed % 2**32, cfg.trials)
    return load_study(storage, job["study_name"], job["space_sha256"], sampler, job["where"])


def optimize(job: dict, worker: int = 0) -> None:
    """One worker's loop; `job` holds everything it needs and pickles (for spawned workers)."""
    import optuna

    from compress.search.results import write_progress
    from compress.search.trial import TrialRunner

    if worker:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // job["workers"]))
    cfg, data = job["cfg"], job["data"]
    study = open_study(job, worker)
    teacher = load_teacher(job["teacher_path"], job["teacher_kind"], data.input_shape)
    runner = TrialRunner(cfg, data, job["data_cfg"], teacher, job["context"],
                         Path(job["cache_dir"]), job["floor_pct"], job["progress"])
    left = cfg.trials - finished(study)
    timeout = None if job["deadline"] is None else job["deadline"] - time.time()
    if left <= 0 or (timeout is not None and timeout <= 0):
        return
    states = tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)

    def progress(study, _trial) -> None:  # the best so far on disk after every trial
        write_progress(Path(job["cache_dir"]), study, job["floor_pct"])

    study.optimize(runner, n_trials=left, timeout=timeout, gc_after_trial=False,
                   callbacks=[optuna.study.MaxTrialsCallback(cfg.trials, states=states),
                              progress])


def _spawned(job: dict, worker: int) -> None:
    """A spawned worker: the parent's consent to run a python model factory carries over."""
    from compress.models.python import trust_code

    with trust_code(job["trusted"]):
        optimize(job, worker)


def run_workers(job: dict) -> None:
    """`job["workers"]` workers on one study: this process and spawned ones."""
    ctx = mp.get_context("spawn")
    others = [ctx.Process(target=_spawned, args=(job, i), daemon=False)
              for i in range(1, job["workers"])]
    for p in others:
        p.start()
    try:
        optimize(job, 0)
    finally:
        for p in others:
            p.join()
    bad = [p.exitcode for p in others if p.exitcode]
    if bad:
        from compress.errors import StageError

        raise StageError(f"search: {len(bad)} worker process(es) failed (exit codes {bad}); "
                         "rerun: finished trials are kept")
