"""Run a pipeline: order stages, hand each its inputs and a fresh output folder, cache by
content hash, write the manifest after every stage, then check the gates.

A stage writes into a staging folder; only when it returns is that folder renamed into
`<root>/<stage id>/` and the manifest updated. A killed run therefore leaves every finished
stage intact and no half-written artifact, and the next run resumes at the first stage whose
inputs changed or whose outputs are missing or altered.

With several processes (DDP, see compress.launch) rank 0 alone takes the lock, decides
what is cached, writes stage folders, the manifest and the report, and runs the stages that do
not train; every rank runs the training stages, the others into a scratch folder they delete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from compress import artifacts, launch
from compress.artifacts import make_folder, remove_empty
from compress.cache import cache_key, data_fingerprint, primary_sha256, reusable
from compress.config import PipelineConfig
from compress.errors import CompressError, ConfigError, StageError
from compress.events import (
    GatesChecked,
    Listener,
    StageCached,
    StageFailed,
    StageFinished,
    StageStarted,
    fan_out,
    to_console,
)
from compress.gates import evaluate_gates, gated_bench_id
from compress.integrity import CACHE, MANIFEST, clean_leftovers, describe_outputs
from compress.measure.energy import EnergyMeter
from compress.measure.system import cpu_info, versions
from compress.stages import STAGES, Artifact, StageContext, StageResult
from compress.trainer.devices import runtime_problem
from compress.trainer.training import train_options_of


@dataclass
class RunSummary:
    root: Path
    manifest: dict
    ran: list[str]
    cached: list[str]


@contextlib.contextmanager
def pipeline_lock(root: Path) -> Iterator[None]:
    """One run per output folder at a time; a second one fails at once with a clear message."""
    make_folder(root)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise ConfigError(f"{root}: another compress run is using this output folder; wait "
                              "for it to finish or use another --out") from e
        yield
    finally:
        os.close(fd)


def output_dirs(cfg: PipelineConfig, out_root: Path, source: str) -> tuple[Path, dict[str, Path]]:
    """The pipeline's folder and each stage's, refused if a name would lead outside `out_root`.

    Names are validated as plain folder names when the file loads; this is the check at the
    point of writing, which holds for configs built any other way too."""
    root = artifacts.path_inside(out_root, cfg.name)
    if root is None:
        raise ConfigError(f"{source}: pipeline, field 'name': '{cfg.name}' would write outside "
                          f"the output folder {out_root}; use a plain folder name")
    dirs = {}
    for st in cfg.stages:
        d = artifacts.path_inside(root, st.id)
        if d is None or d.parent != root:
            raise ConfigError(f"{source}: stage '{st.id}', field 'id': would write outside "
                              f"{root}; use a plain folder name")
        dirs[st.id] = d
    return root, dirs


def execute_stage(cfg, ctx: StageContext, final_dir: Path):
    """Run one stage into a staging folder, then swap it in for `final_dir` by rename."""
    stage_def = STAGES[cfg.stage]
    parent = final_dir.parent
    staging = parent / f".staging-{final_dir.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    ctx.out_dir = staging
    try:
        result = stage_def.fn(cfg, ctx)
        if not (staging / result.primary).is_file():
            raise StageError(f"stage '{cfg.id}' did not write its artifact {result.primary}")
        artifacts.write_json(staging / "metrics.json", result.metrics)
        trash = parent / f".trash-{final_dir.name}-{os.getpid()}"
        if final_dir.exists():
            os.replace(final_dir, trash)
        os.replace(staging, final_dir)
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ctx.out_dir = final_dir
    return result


def _run_in_scratch(cfg, ctx: StageContext) -> None:
    """A training stage on a rank other than 0: it trains in step with rank 0 (DDP needs every
    rank), but writes into a private folder that is deleted, so stage code needs no rank checks
    and only rank 0's files are kept."""
    with tempfile.TemporaryDirectory(prefix=f"compress-rank{launch.rank()}-") as tmp:
        STAGES[cfg.stage].fn(cfg, replace(ctx, out_dir=Path(tmp), progress=False))


def _execute_everywhere(cfg, ctx: StageContext, on_main):
    """`on_main()` (which executes the stage) on rank 0, its result on every rank. A training
    stage runs on the other ranks too, meanwhile; any other stage runs on rank 0 alone."""
    trains = train_options_of(cfg) is not None
    if trains and not launch.is_main():
        _run_in_scratch(cfg, ctx)
    return launch.run_on_main(on_main, share_errors=not trains)


def preflight(stages, world: int, source: str) -> None:
    """Refuse, before anything runs, what this machine or this many processes cannot do: CUDA
    or fp16 where there is no GPU, a global batch that does not split over the processes."""
    for st in stages:
        o = train_options_of(st)
        if o is None:
            continue
        problem = runtime_problem(o.device, o.precision)
        if problem:
            raise launch.collective_error(ConfigError(f"{source}: stage '{st.id}': {problem}"))
        if o.batch_size % world:
            raise launch.collective_error(ConfigError(
                f"{source}: stage '{st.id}', field 'batch_size': {o.batch_size} does not split "
                f"evenly over {world} processes; use a multiple of {world} (batch_size is the "
                "global batch)"))


def check_stage_files(stages, data, source: str) -> None:
    """Files the stages name (foreign ONNX models) checked against the data before a run."""
    for st in stages:
        try:
            st.check_files(data)
        except CompressError as e:
            raise type(e)(f"{source}: stage '{st.id}', {e}") from e


def seeds(cfg: PipelineConfig) -> dict[str, int]:
    """Every seed that shapes the results: the data split's and each seeded stage's."""
    out = {"data": cfg.data.seed}
    out.update({st.id: st.seed for st in cfg.stages if isinstance(getattr(st, "seed", None), int)})
    return out


def run_pipeline(
    cfg: PipelineConfig,
    out_root: str | Path = "exported",
    force: bool = False,
    progress: bool = True,
    source: str = "",
    log=print,
    on_event: Listener | None = None,
    trust_code: bool = False,
) -> RunSummary:
    """Run every stage of `cfg` under `out_root/<name>/`; raises GateError if a gate fails.

    `log` gets the console's lines; `on_event` every typed event (compress.events) as it happens.
    `trust_code` allows `arch: python` models (importing a module the file names runs it).
    Under DDP every rank calls this, and every rank returns rank 0's summary.
    """
    from compress.data import decode_cache

    root, _ = output_dirs(cfg, Path(out_root), source or cfg.name)
    with decode_cache(root / CACHE):  # decoded image folders live in the run folder
        return _run_pipeline(cfg, out_root, force, progress, source,
                             fan_out(to_console(log), on_event), trust_code)


def _run_pipeline(cfg: PipelineConfig, out_root, force: bool, progress: bool, source: str,
                  emit: Listener, trust_code: bool) -> RunSummary:
    from compress.data import load_dataset
    from compress.models import python

    where = source or cfg.name
    # Bad names, bad data and bad user models fail here, before anything is created or locked.
    root, stage_dirs = output_dirs(cfg, Path(out_root), where)
    data_hash = data_fingerprint(cfg.data, where)
    data = load_dataset(cfg.data)
    preflight(cfg.stages, launch.world_size(), where)
    python.check_user_models(cfg.stages, data, trust_code, where)
    check_stage_files(cfg.stages, data, where)
    with python.trust_code(trust_code), (
            pipeline_lock(root) if launch.is_main() else contextlib.nullcontext()):
        old = launch.run_on_main(lambda: _previous_stages(root))
        manifest = _new_manifest(cfg, source, data_hash)
        ran, cached = _run_stages(cfg, root, stage_dirs, old, manifest, data_hash, force,
                                  progress and launch.is_main(), emit)
        gate_results = launch.run_on_main(lambda: _finish(cfg, root, manifest))
        manifest["gates"] = gate_results
        summary = RunSummary(root=root, manifest=manifest, ran=ran, cached=cached)
    if cfg.gates:
        emit(GatesChecked(gate_results))
    failed = [g for g in gate_results if not g["passed"]]
    if failed:
        from compress.errors import GateError

        raise launch.collective_error(
            GateError(f"{len(failed)} of {len(gate_results)} gate(s) failed", gate_results))
    return summary


def _pipeline_dir(source: str) -> Path | None:
    """The folder of the pipeline file a run came from; None when it came from elsewhere."""
    return Path(source).parent if source and Path(source).is_file() else None


def _new_manifest(cfg: PipelineConfig, source: str, data_hash: str) -> dict:
    from compress.data import portable_spec

    return {
        "pipeline": cfg.name,
        "config_file": source,
        "config_sha256": artifacts.sha256_json(cfg.model_dump(mode="json")),
        # A user file's path relative to the pipeline file, and its sha256 (not the build
        # machine's absolute path): the manifest ships with the models.
        "data": portable_spec(cfg.data.model_dump(mode="json"), _pipeline_dir(source)),
        "data_sha256": data_hash,
        "seeds": seeds(cfg),
        "versions": versions(),
        "cpu": cpu_info(),
        "world_size": launch.world_size(),
        "energy": cfg.energy.model_dump(mode="json"),
        "started_at": _now(),
        "stages": {},
    }


def _run_stages(cfg: PipelineConfig, root: Path, stage_dirs: dict[str, Path], old: dict,
                manifest: dict, data_hash: str, force: bool, progress: bool,
                emit: Listener) -> tuple[list[str], list[str]]:
    """Each stage in order, from the cache where its key matches; the manifest is rewritten
    after every stage, so an interrupted run keeps what it finished."""
    done: dict[str, Artifact] = {}
    ran, cached = [], []
    for st in cfg.stages:
        refs = [r for ids in st.referenced_ids().values() for r in ids]
        inputs = {r: done[r] for r in refs}
        key = cache_key(st, inputs, data_hash, cfg)
        prev = old.get(st.id)

        def is_cached(prev=prev, key=key) -> bool:
            return not force and reusable(root, prev, key)

        # Rank 0's files decide, for every rank: the others may not even see them.
        if launch.run_on_main(is_cached):
            entry = {**prev, "status": "cached"}
            cached.append(st.id)
            emit(StageCached(st.id, st.stage, float(prev.get("wall_time_s", 0))))
        else:
            entry = _run_stage(st, cfg, inputs, key, root, stage_dirs[st.id], progress, emit)
            ran.append(st.id)
        primary = root / entry["primary"]
        done[st.id] = Artifact(
            stage_id=st.id, kind=STAGES[st.stage].produces, path=primary,
            sha256=primary_sha256(root, entry), metrics=entry["metrics"],
        )
        manifest["stages"][st.id] = entry
        if launch.is_main():
            # Entries of stages not reached yet are carried over: their files are still on disk.
            later = {s.id: old[s.id] for s in cfg.stages if s.id in old and s.id not in done}
            artifacts.write_json(root / MANIFEST, {**manifest,
                                                   "stages": {**manifest["stages"], **later}})
    return ran, cached


def _finish(cfg: PipelineConfig, root: Path, manifest: dict) -> list[dict]:
    """Gates, the model to ship, the artifact index and the report (rank 0)."""
    from compress.report import write_report
    from compress.report.consumer import artifact_index, ship_choice

    gate_results = evaluate_gates(cfg, manifest, root) if cfg.gates else []
    manifest["gates"] = gate_results
    manifest["gate_bench"] = gated_bench_id(cfg)  # the report's headline bench
    manifest["finished_at"] = _now()
    # What a downstream app needs: the model to ship, and every model file with its sha256,
    # size, accuracy and oldest onnxruntime (README.md repeats them in words).
    manifest["ship"], manifest["ship_why"] = ship_choice(cfg, manifest, root)
    manifest["artifacts"] = artifact_index(root, manifest)
    artifacts.write_json(root / MANIFEST, manifest)
    write_report(root, manifest)
    return gate_results


def _run_stage(st, cfg: PipelineConfig, inputs: dict[str, Artifact], key: str, root: Path,
               stage_dir: Path, progress: bool, emit: Listener) -> dict:
    """Run one stage of a pipeline; its manifest entry, on every rank."""
    ctx = StageContext(stage_id=st.id, out_dir=stage_dir, data_cfg=cfg.data, inputs=inputs,
                       pipeline=cfg.name, progress=progress, energy=cfg.energy, cache_key=key)
    meter = EnergyMeter(cfg.energy)

    def on_main() -> dict:
        emit(StageStarted(st.id, st.stage))
        t0 = time.perf_counter()
        try:
            with meter:
                result = execute_stage(st, ctx, stage_dir)
        except BaseException as e:
            emit(StageFailed(st.id, st.stage, e))
            raise
        wall = time.perf_counter() - t0
        emit(StageFinished(st.id, st.stage, round(wall, 3), result.metrics))
        return {
            "stage": st.stage,
            "status": "ran",
            "cache_key": key,
            "config": st.model_dump(mode="json"),
            "config_sha256": artifacts.sha256_json(st.hash_payload()),
            "inputs": {r: a.sha256 for r, a in inputs.items()},
            "primary": f"{st.id}/{result.primary}",
            "outputs": describe_outputs(root, stage_dir),
            "metrics": result.metrics,
            "wall_time_s": round(wall, 3),
            "energy": meter.result,
            "finished_at": _now(),
        }

    return _execute_everywhere(st, ctx, on_main)


def _previous_stages(root: Path) -> dict:
    """The stage entries of the last run's manifest (rank 0), after clearing its leftovers."""
    clean_leftovers(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        return {}
    try:
        loaded = artifacts.read_json(manifest_path)
    except CompressError:
        return {}  # an unreadable manifest only means nothing is cached
    return loaded.get("stages", {}) if isinstance(loaded, dict) else {}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_single(cfg, data_cfg, inputs: dict[str, Artifact], out_dir: str | Path,
               energy=None, *, data=None, progress: bool | None = None) -> StageResult:
    """Run one stage outside a pipeline into `out_dir` (replaced atomically, as in a pipeline):
    what the `compress <stage>` commands and the Python API both call. `data` is a Dataset in
    memory (the API), else `data_cfg` is loaded; `progress` defaults to rank 0 showing bars.
    Its result (primary file and metrics), on every rank under DDP."""
    out_dir = Path(out_dir)
    preflight([cfg], launch.world_size(), f"compress {cfg.stage}")
    created = launch.run_on_main(lambda: make_folder(out_dir.parent))
    ctx = StageContext(stage_id=cfg.id, out_dir=out_dir, data_cfg=data_cfg, inputs=inputs,
                       pipeline="", progress=launch.is_main() if progress is None else progress,
                       energy=energy, data=data)
    try:
        return _execute_everywhere(cfg, ctx, lambda: execute_stage(cfg, ctx, out_dir))
    except BaseException:
        if launch.is_main():
            remove_empty(created)  # a failed command leaves no empty folders behind
        raise
