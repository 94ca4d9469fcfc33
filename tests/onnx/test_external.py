"""ONNX models with external weights (model.onnx + model.onnx.data): checked, sized, hashed
and copied as one model, by the bench and by a pipeline's manifest, verify and README."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from compress.artifacts import read_json, sha256_file
from compress.cli import cli
from compress.errors import ArtifactError
from compress.onnx.external import (
    copy_model,
    external_files,
    model_sha256,
    model_size_bytes,
)


def _external_model(folder, hidden: int = 300):
    """Digits-shaped (N, 1, 8, 8) -> 10 logits, with ~80 KB of weights in model.onnx.data."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(64, hidden)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(hidden, 10)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["f"]),
         helper.make_node("MatMul", ["f", "w1"], ["h"]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["logits"])],
        "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data",
              size_threshold=0)
    return path


def test_size_and_hash_cover_the_weights_file(tmp_path):
    # setup
    path = _external_model(tmp_path / "m")
    data = path.parent / "model.onnx.data"
    before = model_sha256(path)
    # execute: new weights of the same size, the .onnx untouched
    w = bytearray(data.read_bytes())
    w[0] ^= 0xFF
    data.write_bytes(bytes(w))
    # assert
    assert external_files(path) == [data]
    assert model_size_bytes(path) == path.stat().st_size + data.stat().st_size
    assert data.stat().st_size == (64 * 300 + 300 * 10) * 4
    assert model_sha256(path) != before and sha256_file(path) != model_sha256(path)


@pytest.mark.parametrize("damage,needle", [
    (lambda p: p.unlink(), "weights file model.onnx.data is missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "is 1,000 bytes but the model's tensors"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\0"), "belongs to another export"),
])
def test_a_missing_or_wrong_sized_weights_file_is_refused(tmp_path, damage, needle):
    path = _external_model(tmp_path / "m")
    damage(path.parent / "model.onnx.data")
    with pytest.raises(ArtifactError, match=needle):
        external_files(path)


def test_copy_takes_the_weights_along(tmp_path):
    # setup
    from compress.measure.ort import make_session, predict

    src = _external_model(tmp_path / "a")
    # execute
    (tmp_path / "b").mkdir()
    written = copy_model(src, tmp_path / "b" / "model.onnx")
    # assert
    x = np.random.default_rng(1).normal(size=(3, 1, 8, 8)).astype(np.float32)
    assert [p.name for p in written] == ["model.onnx", "model.onnx.data"]
    np.testing.assert_array_equal(predict(make_session(src), x),
                                  predict(make_session(written[0]), x))


def test_bench_reports_the_true_size(tmp_path):
    # setup
    path = _external_model(tmp_path / "m")
    out = tmp_path / "bench"
    # execute
    res = CliRunner().invoke(cli, ["bench", str(path), "--data", "digits", "--out", str(out),
                                   "--warmup-runs", "1", "--min-runs", "3", "--min-time-s", "0",
                                   "--batch-sizes", "1", "--no-memory",
                                   "--energy-time-s", "0"])
    # assert: 80 KB of weights counted (it was the 1 KB .onnx alone)
    assert res.exit_code == 0, res.output
    rec = read_json(out / "bench.json")["models"]["m"]
    assert rec["size_bytes"] == model_size_bytes(path) > 86_000
    assert rec["files"] == ["model.onnx", "model.onnx.data"]
    assert rec["sha256"] == model_sha256(path)


def test_a_pipeline_exporting_external_weights_lists_hashes_verifies_and_ships_both(tmp_path):
    # setup
    from compress.config import parse_pipeline
    from compress.runner import run_pipeline

    cfg = parse_pipeline({
        "name": "ext", "data": {"source": "digits"},
        "stages": [{"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [64]},
                    "epochs": 1, "batch_size": 128, "device": "cpu"},
                   {"id": "fp32", "stage": "export", "input": "teacher", "external_data": True},
                   {"id": "ort", "stage": "convert", "input": "fp32"}]}, "ext.yaml")
    # execute
    summary = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None)
    root = summary.root
    again = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None)
    (root / "fp32" / "model.onnx.data").unlink()
    res = CliRunner().invoke(cli, ["verify", str(root)])
    # assert
    onnx_file, data = root / "fp32" / "model.onnx", root / "fp32" / "model.onnx.data"
    entry = summary.manifest["stages"]["fp32"]
    assert "fp32/model.onnx.data" in entry["outputs"]
    art = next(a for a in summary.manifest["artifacts"] if a["stage"] == "fp32")
    sizes = [f["size_bytes"] for f in art["files"]]
    assert [f["path"] for f in art["files"]] == ["fp32/model.onnx", "fp32/model.onnx.data"]
    assert art["size_bytes"] == sum(sizes) == entry["metrics"]["size_bytes"]
    assert sizes[1] > 64 * 64 * 4
    # the convert stage keyed on both files, not on the .onnx alone
    assert summary.manifest["stages"]["ort"]["inputs"]["fp32"] == art["sha256"]
    assert art["sha256"] != entry["outputs"]["fp32/model.onnx"]["sha256"]
    assert again.cached == ["teacher", "fp32", "ort"]
    assert res.exit_code == 1 and "missing    fp32/model.onnx.data" in res.output
    assert not data.exists() and onnx_file.exists()


def test_the_readme_lists_the_files_to_ship(tmp_path):
    # setup
    from compress.report.consumer import _files_to_ship

    files = [{"path": "s/model.onnx", "size_bytes": 900, "sha256": "a" * 64},
             {"path": "s/model.onnx.data", "size_bytes": 80_000, "sha256": "b" * 64}]
    # execute
    lines = _files_to_ship({"files": files})
    # assert
    assert lines[0].startswith("Files to ship, together in one folder")
    assert "- `s/model.onnx.data`: 80,000 bytes, sha256 `" + "b" * 64 + "`" in lines
    assert _files_to_ship({"files": files[:1]}) == []


def test_inspect_counts_and_names_the_weights_file(tmp_path):
    # setup
    from compress.onnx.inspection import format_inspection, inspect_file

    path = _external_model(tmp_path / "m")
    onnx_bytes, data_bytes = path.stat().st_size, (64 * 300 + 300 * 10) * 4
    # execute
    info = inspect_file(path)
    text = CliRunner().invoke(cli, ["inspect", str(path)]).output
    # assert
    assert info["size_bytes"] == onnx_bytes + data_bytes == model_size_bytes(path)
    assert info["external_data"] == [{"file": "model.onnx.data", "size_bytes": data_bytes}]
    assert info["params"] == 64 * 300 + 300 * 10
    assert text.splitlines()[0] == (
        f"{path}: onnx, {onnx_bytes + data_bytes:,} bytes (model.onnx {onnx_bytes:,} + weights "
        f"file model.onnx.data {data_bytes:,})") == format_inspection(info).splitlines()[0]
