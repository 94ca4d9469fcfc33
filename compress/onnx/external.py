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

# The check of which files a model is made of lives in artifacts.py, below measure/ (which
# checks them before ORT loads a model) and onnx/ alike.
from compress.artifacts import external_files, sha256_file


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
