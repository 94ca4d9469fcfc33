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


def _pipeline(gates: dict, with_explain: bool = True) -> dict:
    stages = [
        {"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [8]}},
        {"id": "teacher_onnx", "stage": "export", "input": "teacher"},
        {"id": "student_onnx", "stage": "export", "input": "teacher"},
    ]
    if with_explain:
        stages.append({"id": "explain", "stage": "explain", "teacher": "teacher",
                       "models": ["teacher_onnx", "student_onnx"]})
    return {"name": "g", "data": {"source": "digits"}, "stages": stages, "gates": gates}


def test_fidelity_gate_reads_the_explain_stage():
    # setup
    from compress.config import parse_pipeline
    from compress.gates import evaluate_gates

    cfg = parse_pipeline(_pipeline({"min_attribution_fidelity": 0.5}), "g.yaml")
    manifest = {"stages": {"explain": {"metrics": {"student_onnx.spearman": 0.42}}}}
    # execute
    [gate] = evaluate_gates(cfg, manifest, None)
    # assert
    assert gate["passed"] is False and gate["measured_value"] == 0.42
    assert "student_onnx" in gate["gate"]


def test_fidelity_gate_without_explain_stage_is_refused():
    from compress.config import parse_pipeline
    from compress.errors import ConfigError

    with pytest.raises(ConfigError, match="min_attribution_fidelity.*no explain stage"):
        parse_pipeline(_pipeline({"min_attribution_fidelity": 0.5}, False), "g.yaml")


def test_explain_needs_onnx_models_in_a_pipeline():
    from compress.config import parse_pipeline
    from compress.errors import ConfigError

    raw = _pipeline({})
    raw["stages"][-1]["models"] = ["teacher_onnx", "teacher"]
    with pytest.raises(ConfigError, match="produces a checkpoint, but this field needs an ONNX"):
        parse_pipeline(raw, "g.yaml")
