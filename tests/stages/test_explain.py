"""`compress explain` / the explain stage on the tiny digits model: a model explained against
its own copy has fidelity 1 and counts; bad inputs are one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import CLI_ENV, cli_command


def _explain(args, out):
    return subprocess.run([*cli_command(), "explain", *map(str, args), "--out", str(out)],
                          capture_output=True, text=True, env=CLI_ENV)


@pytest.fixture(scope="module")
def explained(tiny_checkpoint, tiny_onnx, tmp_path_factory):
    """The teacher against an identical copy of itself, 60 samples."""
    tmp = tmp_path_factory.mktemp("explain")
    copy = tmp / "copy.onnx"
    shutil.copy(tiny_onnx, copy)
    out = tmp / "out"
    res = _explain([tiny_onnx, copy, "--teacher", tiny_checkpoint, "--samples", 60,
                    "--randomized-levels", 2, "--bootstrap-resamples", 200], out)
    return res, out


def test_copy_of_the_teacher_has_fidelity_one_and_counts(explained):
    # setup
    res, out = explained
    # assert
    assert res.returncode == 0, res.stderr
    result = json.loads((out / "explain.json").read_text())
    m1 = result["models"]["m1"]
    assert m1["spearman"]["mean"] == pytest.approx(1.0)
    assert m1["counts"] is True
    assert result["sanity_check"]["passed"]
    assert result["references"]["randomized"]["spearman"]["ci_high"] < 0.5
    for name in ("explain.md", "fidelity.png", "attribution_grid.png"):
        assert (out / name).stat().st_size > 0
    assert not (out / ".randomized").exists()  # the randomized copies are not kept


@pytest.mark.parametrize("extra, message", [
    (["--samples", "100000"], "field 'samples'.*more than the"),
    (["--window", "9"], "field 'window'.*larger than the input"),
])
def test_bad_settings_write_nothing(tiny_checkpoint, tiny_onnx, tmp_path, extra, message):
    # execute
    res = _explain([tiny_onnx, tiny_onnx, "--teacher", tiny_checkpoint, *extra], tmp_path / "o")
    # assert
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    import re

    assert re.search(message, res.stderr), res.stderr
    assert not (tmp_path / "o").exists()


def test_checkpoint_where_onnx_is_needed_is_refused(tiny_checkpoint, tiny_onnx, tmp_path):
    res = _explain([tiny_onnx, tiny_checkpoint, "--teacher", tiny_checkpoint], tmp_path / "o")
    assert res.returncode == 2
    assert "is a checkpoint, but occlusion runs the model in ONNX Runtime" in res.stderr
    assert not (tmp_path / "o").exists()


def test_model_with_another_input_is_refused(tiny_checkpoint, tiny_onnx, tmp_path):
    # setup: a model taking (N, 1, 4, 4) instead of the teacher's (N, 1, 8, 8)
    import torch

    other = tmp_path / "other.onnx"
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10))
    torch.onnx.export(model, (torch.zeros(2, 1, 4, 4),), str(other), dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}})
    # execute
    res = _explain([tiny_onnx, other, "--teacher", tiny_checkpoint], tmp_path / "o")
    # assert
    assert res.returncode == 2
    assert "takes inputs" in res.stderr and "the teacher 'm0' takes" in res.stderr
    assert not (tmp_path / "o").exists()
