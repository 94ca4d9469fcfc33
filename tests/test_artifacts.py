"""Artifacts: atomic writes, weights-only checkpoint loading, clear errors for damaged files."""

from __future__ import annotations

import pickle

import pytest
import torch

from compress.artifacts import (
    atomic_path,
    load_checkpoint,
    path_inside,
    save_checkpoint,
    sha256_file,
)
from compress.errors import ArtifactError


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path, capsys):
    # setup
    path = tmp_path / "evil.pt"
    torch.save({"format": "compress.checkpoint/1", "payload": Evil()}, path)
    # execute
    with pytest.raises(ArtifactError, match="refused to load"):
        load_checkpoint(path)
    # assert: the object's code never ran
    assert "code ran" not in capsys.readouterr().out


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"state_dict": {"w": torch.ones(100)}})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="not a readable checkpoint"):
        load_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_foreign_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(ArtifactError, match="not a compress checkpoint"):
        load_checkpoint(path)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ArtifactError):
        load_checkpoint(raw)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    # setup
    path = tmp_path / "f.txt"
    path.write_text("old")
    # execute
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    # assert
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    assert len(sha256_file(path)) == 64


def test_paths_from_files_stay_inside_their_folder(tmp_path):
    # setup: a symlink that leads out of the folder
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    # execute / assert
    assert path_inside(root, "a/b.json") == root / "a" / "b.json"
    for rel in ("../x", "a/../../x", "/etc/passwd", "", "out/x"):
        assert path_inside(root, rel) is None, rel


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_umask_s_mode(tmp_path, umask, mode):
    # setup: mkstemp makes 0600 files; a renamed one would keep that whatever the umask
    import os

    from compress import artifacts

    old = os.umask(umask)
    try:
        # execute
        artifacts.write_json(tmp_path / "manifest.json", {"a": 1})
    finally:
        os.umask(old)
    # assert
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == mode
