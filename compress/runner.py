"""Run a pipeline: order stages, hand each its inputs and a fresh output folder, cache by
content hash, write the manifest after every stage, then check the gates.

A stage writes into a staging folder; only when it returns is that folder renamed into
`<root>/<stage id>/` and the manifest updated. A killed run therefore leaves every finished
stage intact and no half-written artifact, and the next run resumes at the first stage whose
inputs changed or whose outputs are missing or altered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from compress import artifacts
from compress.config import PipelineConfig
from compress.errors import CompressError, ConfigError, StageError
from compress.gates import evaluate_gates
from compress.measure.energy import EnergyMeter
from compress.measure.system import cpu_info, versions
from compress.stages import STAGES, Artifact, StageContext

MANIFEST = "manifest.json"


@dataclass
class RunSummary:
    root: Path
    manifest: dict
    ran: list[str]
    cached: list[str]


def data_fingerprint(data_cfg, source: str = "pipeline") -> str:
    """Hash of the data spec; for user files, of the file's bytes rather than its path."""
    spec = data_cfg.model_dump(mode="json")
    if spec.get("source") == "npz":
        path = Path(spec.pop("path"))
        if not path.is_file():
            raise ConfigError(f"{source}: data, field 'path': {path}: file not found")
        spec["sha256"] = artifacts.sha256_file(path)
    return artifacts.sha256_json(spec)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of compress's own source and the versions of the libraries that shape results:
    an artifact made by other code is rebuilt, not trusted."""
    import compress

    h = hashlib.sha256()
    pkg = Path(compress.__file__).parent
    for p in sorted(pkg.rglob("*.py")):
        h.update(p.relative_to(pkg).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(artifacts.canonical_json(versions()).encode())
    return h.hexdigest()


def cache_key(cfg, inputs: dict[str, Artifact], data_hash: str, pipeline=None) -> str:
    payload = {
        "stage": cfg.hash_payload(),
        "inputs": {k: a.sha256 for k, a in sorted(inputs.items())},
        "data": data_hash,
        "code": code_fingerprint(),
    }
    # Pipeline-level sections a stage reads (the bench reads `energy`) are part of its key only.
    for name in getattr(cfg, "pipeline_settings", ()):
        payload[name] = getattr(pipeline, name).model_dump(mode="json") if pipeline else None
    return artifacts.sha256_json(payload)


@contextlib.contextmanager
def pipeline_lock(root: Path) -> Iterator[None]:
    """One run per output folder at a time; a second one fails at once with a clear message."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{root}: cannot create the output folder ({e.strerror}); "
                          "choose another with --out") from e
    if not os.access(root, os.W_OK):
        raise ConfigError(f"{root}: output folder is not writable; choose another with --out")
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


def outputs_intact(root: Path, entry: dict) -> bool:
    """True when every file the manifest lists for a stage still exists with the same hash."""
    outs = entry.get("outputs") or {}
    if not outs:
        return False
    for rel, meta in outs.items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != meta["size_bytes"]:
            return False
        if artifacts.sha256_file(p) != meta["sha256"]:
            return False
    return True


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


def _describe_outputs(root: Path, stage_dir: Path) -> dict:
    out = {}
    for p in sorted(stage_dir.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            out[rel] = {"sha256": artifacts.sha256_file(p), "size_bytes": p.stat().st_size}
    return out


def _clean_leftovers(root: Path) -> None:
    for p in root.glob(".staging-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".trash-*"):
        shutil.rmtree(p, ignore_errors=True)


def run_pipeline(
    cfg: PipelineConfig,
    out_root: str | Path = "exported",
    force: bool = False,
    progress: bool = True,
    source: str = "",
    log=print,
) -> RunSummary:
    """Run every stage of `cfg` under `out_root/<name>/`; raises GateError if a gate fails."""
    from compress.data import load_dataset

    root = Path(out_root) / cfg.name
    # Bad data fails here, before anything is created or locked under the output folder.
    data_hash = data_fingerprint(cfg.data, source or cfg.name)
    load_dataset(cfg.data)
    with pipeline_lock(root):
        _clean_leftovers(root)
        manifest_path = root / MANIFEST
        old = {}
        if manifest_path.is_file():
            try:
                loaded = artifacts.read_json(manifest_path)
                old = loaded.get("stages", {}) if isinstance(loaded, dict) else {}
            except CompressError:
                old = {}  # an unreadable manifest only means nothing is cached
        manifest = {
            "pipeline": cfg.name,
            "config_file": source,
            "config_sha256": artifacts.sha256_json(cfg.model_dump(mode="json")),
            "data": cfg.data.model_dump(mode="json"),
            "data_sha256": data_hash,
            "versions": versions(),
            "cpu": cpu_info(),
            "energy": cfg.energy.model_dump(mode="json"),
            "started_at": _now(),
            "stages": {},
        }
        done: dict[str, Artifact] = {}
        ran, cached = [], []
        for st in cfg.stages:
            refs = [r for ids in st.referenced_ids().values() for r in ids]
            inputs = {r: done[r] for r in refs}
            key = cache_key(st, inputs, data_hash, cfg)
            prev = old.get(st.id)
            stage_dir = root / st.id
            if not force and prev and prev.get("cache_key") == key and outputs_intact(root, prev):
                entry = {**prev, "status": "cached"}
                cached.append(st.id)
                log(f"[{st.id}] cached ({st.stage}, {prev.get('wall_time_s', 0):.1f} s when run)")
            else:
                log(f"[{st.id}] running {st.stage} ...")
                ctx = StageContext(stage_id=st.id, out_dir=stage_dir, data_cfg=cfg.data,
                                   inputs=inputs, pipeline=cfg.name, progress=progress,
                                   energy=cfg.energy)
                t0 = time.perf_counter()
                with EnergyMeter(cfg.energy) as meter:
                    result = execute_stage(st, ctx, stage_dir)
                wall = time.perf_counter() - t0
                entry = {
                    "stage": st.stage,
                    "status": "ran",
                    "cache_key": key,
                    "config": st.model_dump(mode="json"),
                    "config_sha256": artifacts.sha256_json(st.hash_payload()),
                    "inputs": {r: a.sha256 for r, a in inputs.items()},
                    "primary": f"{st.id}/{result.primary}",
                    "outputs": _describe_outputs(root, stage_dir),
                    "metrics": result.metrics,
                    "wall_time_s": round(wall, 3),
                    "energy": meter.result,
                    "finished_at": _now(),
                }
                ran.append(st.id)
                log(f"[{st.id}] done in {wall:.1f} s{_headline(result.metrics)}")
            primary = root / entry["primary"]
            done[st.id] = Artifact(
                stage_id=st.id, kind=STAGES[st.stage].produces, path=primary,
                sha256=entry["outputs"][entry["primary"]]["sha256"], metrics=entry["metrics"],
            )
            manifest["stages"][st.id] = entry
            # Written after every stage, so an interrupted run keeps what it finished; entries
            # of stages not reached yet are carried over, since their files are still on disk.
            later = {s.id: old[s.id] for s in cfg.stages if s.id in old and s.id not in done}
            artifacts.write_json(manifest_path, {**manifest,
                                                 "stages": {**manifest["stages"], **later}})

        gate_results = evaluate_gates(cfg, manifest, root) if cfg.gates else []
        manifest["gates"] = gate_results
        manifest["finished_at"] = _now()
        artifacts.write_json(manifest_path, manifest)
        from compress.report import write_report

        write_report(root, manifest)
        summary = RunSummary(root=root, manifest=manifest, ran=ran, cached=cached)
    failed = [g for g in gate_results if not g["passed"]]
    if failed:
        from compress.errors import GateError

        raise GateError(f"{len(failed)} of {len(gate_results)} gate(s) failed", gate_results)
    return summary


def _headline(metrics: dict) -> str:
    keys = ("test_accuracy_pct", "ort_test_accuracy_pct", "parity_max_abs_diff", "size_bytes")
    shown = [f"{k} {metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), int | float)]
    return f": {', '.join(shown)}" if shown else ""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_single(cfg, data_cfg, inputs: dict[str, Artifact], out_dir: str | Path,
               energy=None) -> dict:
    """Run one stage outside a pipeline (the `compress <stage>` commands) into `out_dir`."""
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{out_dir}: cannot create the output folder ({e.strerror})") from e
    if not os.access(out_dir.parent, os.W_OK):
        raise ConfigError(f"{out_dir.parent}: not writable; choose another --out")
    ctx = StageContext(stage_id=cfg.id, out_dir=out_dir, data_cfg=data_cfg, inputs=inputs,
                       pipeline="", progress=True, energy=energy)
    return execute_stage(cfg, ctx, out_dir).metrics
