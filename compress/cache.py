"""Cache keys: when a stage's earlier result can stand in for running it again.

A stage's key hashes its config, the hashes of its inputs, the data spec (a user file by its
bytes, not its path), compress's own source and the versions of the libraries that shape
results, and the pipeline sections it reads. An earlier run's manifest entry is reused only
under the same key and with every output file unchanged (compress.integrity).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from compress import artifacts
from compress.errors import ConfigError
from compress.integrity import outputs_intact


def data_fingerprint(data_cfg, source: str = "pipeline") -> str:
    """Hash of the data spec; for user files, of the file's bytes rather than its path."""
    spec = data_cfg.model_dump(mode="json")
    if spec.get("source") == "image_folder":
        from compress.data import content_sha256

        spec.pop("path")  # the files' bytes, not where they lie
        spec["sha256"] = content_sha256(data_cfg)
    elif spec.get("source") in ("npz", "csv"):
        path = Path(spec.pop("path"))
        where = f"{source}: data, field 'path': {path}"
        if not path.is_file():
            what = (f"is a folder, not a .{spec['source']} file" if path.is_dir()
                    else "file not found")
            raise ConfigError(f"{where}: {what}")
        try:
            spec["sha256"] = artifacts.sha256_file(path)
        except OSError as e:
            raise ConfigError(f"{where}: cannot read it ({e.strerror}); check its "
                              "permissions") from e
    return artifacts.sha256_json(spec)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of compress's own source and the versions of the libraries that shape results:
    an artifact made by other code is rebuilt, not trusted."""
    import compress
    from compress.measure.system import versions

    h = hashlib.sha256()
    pkg = Path(compress.__file__).parent
    for p in sorted(pkg.rglob("*.py")):
        if p.relative_to(pkg).parts[0] == "report":
            continue  # reports (and bench.md tables) format measured numbers: no re-measuring
        h.update(p.relative_to(pkg).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(artifacts.canonical_json(versions()).encode())
    return h.hexdigest()


def cache_key(cfg, inputs: dict, data_hash: str, pipeline=None) -> str:
    """The key of stage `cfg` with `inputs` ({id: Artifact}) on the data hashed `data_hash`."""
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


def reusable(root: Path, prev, key: str) -> bool:
    """A manifest entry from an earlier run can stand in for running the stage: same cache key,
    its primary artifact among its outputs, and every output file unchanged. A damaged entry
    is simply not reusable."""
    if not isinstance(prev, dict) or prev.get("cache_key") != key:
        return False
    outs = prev.get("outputs")
    return (isinstance(outs, dict) and prev.get("primary") in outs
            and isinstance(prev.get("metrics"), dict) and outputs_intact(root, prev))


def primary_sha256(root: Path, entry: dict) -> str:
    """The hash later stages key on: the primary file's, or for an ONNX model with external
    weights, of the model's files together (a new weights file must rerun its consumers)."""
    from compress.onnx.external import combine_sha256, external_files

    primary = root / entry["primary"]
    files = [primary, *external_files(primary)]
    return combine_sha256([(p.name, entry["outputs"][p.relative_to(root).as_posix()]["sha256"])
                           for p in files])
