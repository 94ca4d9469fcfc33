"""examples/classify.py on models of a fixed batch size (a `target: mobile` build takes 1)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from compress.onnx.mobile import fix_input_shape
from tests.conftest import REPO


def _classify():
    spec = importlib.util.spec_from_file_location("classify", REPO / "examples" / "classify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("batch", [1, 7])
def test_a_fixed_batch_model_is_run_in_chunks_of_its_batch(tiny_run, tmp_path, capsys, batch):
    # setup: the tiny model with its batch axis fixed; 360 test samples (7 does not divide it)
    root, _ = tiny_run
    fixed = tmp_path / "fixed.onnx"
    fix_input_shape(root / "teacher_onnx" / "model.onnx", fixed, [batch, 1, 8, 8])
    with np.load(root / "test_data.npz") as d:
        assert len(d["y"]) % 7 and len(d["y"]) > 256
    # execute
    rc = _classify().main([str(fixed), "--data", str(root / "test_data.npz")])
    # assert: every sample predicted, the stored accuracy reproduced
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "-> match" in out
