"""ONNX models whose weights lie in other files (`model.onnx` + `model.onnx.data`, what
exporters write for large models): the files a model is made of, checked, sized and hashed
together, and copied together.

A model's size is the sum of its files; its sha256 is the .onnx file's when it has no external
data, else the sha256 of the lines `<name> <sha256>` of every file, the .onnx first (so a
changed weights file changes the hash that caches and manifests key on).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from compress.artifacts import path_inside, sha256_file
from compress.errors import ArtifactError


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


def model_files(path: str | Path) -> list[Path]:
    """The .onnx file and every file its weights are in."""
    return [Path(path), *external_files(path)]


def model_size_bytes(path: str | Path) -> int:
    """Bytes on disk of the model and its weights files together."""
    return sum(p.stat().st_size for p in model_files(path))


def combine_sha256(hashes: list[tuple[str, str]]) -> str:
    """One hash for a model's files [(name, sha256)], the .onnx first; a lone file keeps its own."""
    if len(hashes) == 1:
        return hashes[0][1]
    return hashlib.sha256("".join(f"{n} {h}\n" for n, h in hashes).encode()).hexdigest()


def model_sha256(path: str | Path) -> str:
    """sha256 of the model's files together (see the module docstring)."""
    return combine_sha256([(p.name, sha256_file(p)) for p in model_files(path)])


def copy_model(src: str | Path, dst: str | Path) -> list[Path]:
    """Copy a model and its weights files to `dst` (a .onnx path); the weights keep their names
    (the .onnx refers to them by name). Returns the files written."""
    src, dst = Path(src), Path(dst)
    written = [dst]
    shutil.copyfile(src, dst)
    for p in external_files(src):
        target = dst.parent / p.relative_to(src.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
        written.append(target)
    return written
