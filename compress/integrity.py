"""Integrity of a pipeline's output folder: every file the manifest lists, rehashed.

The runner reuses a cached stage only when all of its files still match the manifest
(`outputs_intact`); `compress verify` reports each file that does not. Paths come from a file on
disk, so each one is confined to the folder before it is opened.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compress.artifacts import path_inside, read_json, sha256_file
from compress.errors import ArtifactError

MANIFEST = "manifest.json"
# Decoded image folders (compress.data.image_folder): rebuilt from the data when missing, so
# neither an artifact nor listed in the manifest.
CACHE = ".cache"
# What an interrupted run leaves: a stage's staging folder, a replaced stage folder on its way
# out, a temporary file of an atomic write. Never artifacts; the next run removes them.
LEFTOVER_GLOBS = (".staging-*", ".trash-*", ".*.tmp")


@dataclass(frozen=True)
class FileCheck:
    """One file the manifest lists, as found on disk."""

    stage: str
    path: str  # relative to the folder, as the manifest lists it
    status: str  # ok | missing | changed | unreadable | outside
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def check_output(root: Path, rel: str, meta: Any) -> tuple[str, str]:
    """(status, detail) of one listed file: is it there, with the recorded size and sha256?"""
    path = path_inside(root, rel)
    if path is None:
        return "outside", "the manifest names a path outside this folder"
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        return "changed", "the manifest records no sha256 for it"
    if not path.is_file():
        return "missing", ""
    try:
        size = path.stat().st_size
        if size != meta.get("size_bytes"):
            return "changed", f"{size} bytes, recorded {meta.get('size_bytes')}"
        digest = sha256_file(path)
    except OSError as e:
        return "unreadable", e.strerror or type(e).__name__
    if digest != meta["sha256"]:
        return "changed", f"sha256 {digest[:12]}..., recorded {meta['sha256'][:12]}..."
    return "ok", ""


def outputs_intact(root: Path, entry: Any) -> bool:
    """True when a manifest entry lists files and every one still matches its record."""
    outs = entry.get("outputs") if isinstance(entry, dict) else None
    if not isinstance(outs, dict) or not outs:
        return False
    return all(check_output(root, rel, meta)[0] == "ok" for rel, meta in outs.items())


def read_manifest(root: Path) -> dict:
    """The manifest of a pipeline output folder; ArtifactError if `root` is not one."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{root}: not a pipeline output folder (no {MANIFEST}); give the "
                            "folder `compress run` wrote, e.g. exported/<pipeline>")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
        raise ArtifactError(f"{path}: not a compress manifest (no 'stages' mapping); rerun the "
                            "pipeline to rewrite it")
    return manifest


def verify_folder(root: Path) -> list[FileCheck]:
    """Every file the manifest of `root` lists, checked; a stage that lists none is 'missing'."""
    root = Path(root)
    checks = []
    for sid, entry in read_manifest(root)["stages"].items():
        outs = entry.get("outputs") if isinstance(entry, dict) else None
        if not isinstance(outs, dict) or not outs:
            checks.append(FileCheck(sid, f"{sid}/", "missing", "the manifest lists no files"))
            continue
        for rel, meta in outs.items():
            checks.append(FileCheck(sid, rel, *check_output(root, rel, meta)))
    return checks


def leftovers(root: Path) -> list[Path]:
    """Staging folders and temporary files an interrupted run left in `root`."""
    return sorted(p for pattern in LEFTOVER_GLOBS for p in Path(root).glob(pattern))


def clean_leftovers(root: Path) -> None:
    """Remove what interrupted runs left in `root` (see LEFTOVER_GLOBS)."""
    # Only ever called under the folder's lock, so none of these belongs to a live run.
    for p in leftovers(root):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def describe_outputs(root: Path, stage_dir: Path) -> dict:
    """{path relative to root: sha256 and size} of every file under `stage_dir`: what the
    manifest lists for a stage, and what `check_output` later compares against."""
    out = {}
    for p in sorted(stage_dir.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            out[rel] = {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
    return out
