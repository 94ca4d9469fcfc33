"""Files that stages exchange: atomic writes, hashes, self-describing checkpoints, and the
files an ONNX model with external weights is made of (compress.onnx.external builds on it).

Every write goes to a temporary file in the destination folder and is renamed into place, so a
killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compress.errors import ArtifactError, ConfigError

CHECKPOINT_FORMAT = "compress.checkpoint/1"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def path_inside(root: str | Path, rel: str) -> Path | None:
    """`root / rel` when it stays inside `root`, else None: no absolute path, no `..`, and no
    symlink that leads out. For paths that come from a file (YAML, a manifest)."""
    p = Path(rel)
    if not p.parts or p.is_absolute() or ".." in p.parts:
        return None
    full = Path(root) / p
    try:
        if not full.resolve().is_relative_to(Path(root).resolve()):
            return None
    except (OSError, RuntimeError):  # a symlink loop
        return None
    return full


def make_folder(folder: Path) -> list[Path]:
    """`mkdir -p folder`, or a ConfigError saying why not; returns the folders it created,
    deepest first, so that a command that then fails can take them back."""
    chain = (folder, *folder.parents)
    created = [p for p in chain if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in chain if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else e.strerror
        raise ConfigError(f"{folder}: cannot create the output folder ({why}); choose another "
                          "with --out") from e
    if not os.access(folder, os.W_OK):
        remove_empty(created)
        raise ConfigError(f"{folder}: output folder is not writable; choose another with --out")
    return created


def remove_empty(folders: list[Path]) -> None:
    """Take back folders a failed command created (deepest first), if they are still empty."""
    for p in folders:
        with contextlib.suppress(OSError):
            p.rmdir()


def external_files(path: str | Path) -> list[Path]:
    """The files holding `path`'s external tensors (none for a self-contained model), each
    checked: inside the model's folder, present, and of exactly the size its tensors need."""
    path = Path(path)
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return []  # .ort files are self-contained; a missing model is reported by its reader
    ends = _tensor_ends(path)
    files = []
    for location, end in ends.items():
        p = path_inside(path.parent, location)
        if p is None:
            raise ArtifactError(f"{path}: its weights file '{location}' lies outside the model's "
                                "folder; keep the weights file beside the .onnx")
        if not p.is_file():
            raise ArtifactError(f"{path}: its weights file {location} is missing from "
                                f"{path.parent}; copy the .onnx and {location} together")
        size = p.stat().st_size
        if size != end:
            raise ArtifactError(
                f"{path}: weights file {location} is {size:,} bytes but the model's tensors end "
                f"at byte {end:,}; it is truncated or belongs to another export: copy both "
                "files from the same export")
        files.append(p)
    return files


def _tensor_ends(path: Path) -> dict[str, int]:
    """{location: byte where its last tensor ends} over every external tensor of the model."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ArtifactError(f"{path}: not a readable ONNX file ({str(e).splitlines()[0][:200]})"
                            ) from e
    ends: dict[str, int] = {}
    for t in _get_all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else _nbytes(t)
        loc = info.get("location", "")
        ends[loc] = max(ends.get(loc, 0), offset + length)
    return ends


def _nbytes(t) -> int:
    import numpy as np
    from onnx import helper

    count = int(np.prod(t.dims)) if len(t.dims) else 1
    return count * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; renamed into place it would keep that, and a serving
        # process or another user could not read what a run shipped. Give it the mode a plain
        # open() would: 0666 less the umask.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ArtifactError(f"{path}: file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e}); delete it and rerun") from e


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Save a self-describing checkpoint: model spec, state dict, data spec, config, metrics.

    Only tensors, numbers, strings, lists and dicts go in, so that `load_checkpoint` can use
    `torch.load(weights_only=True)` and never unpickles code.
    """
    import torch

    payload = {"format": CHECKPOINT_FORMAT, **payload}
    # Saved through a buffer: torch names the archive's root folder after the file, and the
    # temporary file's random name would make identical checkpoints differ byte for byte.
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise ArtifactError(f"{path}: not a readable checkpoint (not a torch.save archive, or "
                            "truncated); rerun the stage that made it")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is a page long; the name of the offending global is what matters.
        named = re.search(r"GLOBAL ([\w.]+)", str(e))
        raise ArtifactError(
            f"{path}: refused to load: the checkpoint holds Python objects beyond tensors and "
            "plain data" + (f" (it names {named.group(1)})" if named else "")
            + ", and only weights_only loading is allowed; use a checkpoint compress wrote"
        ) from e
    except Exception as e:  # torch raises RuntimeError/EOFError/zipfile errors for damage
        raise ArtifactError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "rerun the stage that made it"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ArtifactError(
            f"{path}: not a compress checkpoint (expected format {CHECKPOINT_FORMAT!r})"
        )
    return ckpt
