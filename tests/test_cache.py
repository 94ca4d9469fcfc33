"""compress.cache: a stage's key follows the bytes of what it reads, not where they lie, and an
earlier entry stands in for a run only under the same key."""

from __future__ import annotations

import pytest

from compress import cache
from compress.cache import cache_key, data_fingerprint, reusable
from compress.data.npz import NpzData
from compress.errors import ConfigError
from compress.stages.base import Artifact
from compress.stages.export import ExportConfig


def test_a_user_data_file_is_keyed_by_its_bytes_not_its_path(tmp_path):
    # setup: the same bytes in two places, other bytes in a third
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    a.write_bytes(b"one")
    b.write_bytes(b"one")
    c.write_bytes(b"two")
    # execute
    keys = [data_fingerprint(NpzData(path=str(p))) for p in (a, b, c)]
    # assert
    assert keys[0] == keys[1] != keys[2]
    with pytest.raises(ConfigError, match="p.yaml: data, field 'path': .*file not found"):
        data_fingerprint(NpzData(path=str(tmp_path / "none.npz")), "p.yaml")


def test_the_key_changes_with_the_config_and_the_inputs_and_gates_reuse(tmp_path, monkeypatch):
    # setup: the code's hash fixed (computing it imports torch and onnxruntime for versions)
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "code")
    cfg = ExportConfig(id="onnx", input="m")
    other = ExportConfig(id="onnx", input="m", atol=cfg.atol * 2)
    art = Artifact("m", "checkpoint", tmp_path / "model.pt", "aa")
    # execute
    key = cache_key(cfg, {"m": art}, "data")
    keys = {key, cache_key(other, {"m": art}, "data"),
            cache_key(cfg, {"m": Artifact("m", "checkpoint", art.path, "bb")}, "data"),
            cache_key(cfg, {"m": art}, "other data")}
    # assert: four different keys; an entry with another key is never reused
    assert len(keys) == 4
    assert not reusable(tmp_path, {"cache_key": "x", "outputs": {}, "primary": "p"}, key)
    assert not reusable(tmp_path, None, key)
