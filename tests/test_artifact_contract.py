"""What a downstream app relies on, for every ONNX artifact of a run: the contract in its
metadata, stable input/output names, the manifest's artifact list, the generated consumer
README and raw test data, and examples/classify.py reproducing the stored accuracy with
onnxruntime and numpy alone."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx

from compress import artifacts
from compress.config import parse_pipeline
from compress.measure.ort import make_session, read_metadata
from compress.runner import run_pipeline
from tests.conftest import REPO, TINY_PIPELINE

ONNX_STAGES = ("student_fp32", "student_int8")


def test_every_onnx_artifact_carries_the_contract_of_that_file(compress_run):
    # setup
    root, summary = compress_run
    stages = summary.manifest["stages"]
    for sid in ONNX_STAGES:
        # execute
        meta = read_metadata(root / sid / "model.onnx")
        metrics = stages[sid]["metrics"]
        # assert: the accuracy is this file's own (int8 for the int8 model)
        own = metrics.get("test_accuracy_pct", metrics.get("ort_test_accuracy_pct"))
        assert meta["compress.metrics"]["test_accuracy_pct"] == own, sid
        assert meta["compress.metrics"]["test_samples"] == 360
        assert "size_bytes" not in meta["compress.metrics"]  # a file cannot state its own size
        assert meta["compress.input"]["name"] == "input"
        assert set(meta["compress.preprocessing"]) >= {"mean", "std", "layout", "formula"}
        assert meta["compress.class_labels"] == [str(i) for i in range(10)]
        source = meta["compress.source"]
        assert (source["pipeline"], source["stage"]) == ("tinyc", sid)
        assert source["cache_key"] == stages[sid]["cache_key"]
        assert set(meta["compress.versions"]) >= {"torch", "onnx", "onnxruntime", "compress"}
        assert "isa" in meta["compress.measured_on"]
        assert meta["compress.min_onnxruntime"]["version"] == "1.18.0"  # IR 10, opset 18
    int8 = read_metadata(root / "student_int8" / "model.onnx")["compress.metrics"]
    assert int8["test_accuracy_pct"] == stages["student_int8"]["metrics"]["test_accuracy_pct"]
    assert "fp32_test_accuracy_pct" in int8


def test_input_and_output_names_are_stable_across_stages(compress_run, tiny_onnx):
    # setup
    root, _ = compress_run
    files = [tiny_onnx, *(root / s / "model.onnx" for s in ONNX_STAGES),
             root / "student_int8_ort" / "model.ort"]
    for path in files:
        # execute
        session = make_session(path, 1)
        # assert
        assert [i.name for i in session.get_inputs()] == ["input"], path
        assert [o.name for o in session.get_outputs()] == ["logits"], path


def test_unused_opset_imports_are_dropped(compress_run):
    # quant_pre_process declares ai.onnx.ml 5, training, nchwc...: unused, and refused by
    # older runtimes, so the artifact keeps only the domains its nodes use
    model = onnx.load(str(compress_run[0] / "student_int8" / "model.onnx"))
    used = {n.domain for n in model.graph.node} | {""}
    assert {o.domain for o in model.opset_import} <= used | {"ai.onnx"}


def test_manifest_lists_every_model_file_with_hash_size_and_accuracy(compress_run):
    # setup
    root, summary = compress_run
    # execute
    index = {a["stage"]: a for a in summary.manifest["artifacts"]}
    # assert
    assert set(index) == {*ONNX_STAGES, "student_int8_ort"}
    # the int8 student ships unless its fp32 export is as fast and as accurate (issue 22)
    bench = artifacts.read_json(root / "bench" / "bench.json")["models"]
    fp32, int8 = ((bench[m]["latency"]["b1_t1"]["p50_ms"], bench[m]["accuracy_pct"])
                  for m in ("student_fp32", "student_int8"))
    dominated = fp32[0] <= int8[0] and fp32[1] >= int8[1]
    ship = "student_fp32" if dominated else "student_int8"
    assert summary.manifest["ship"] == ship and index[ship]["ship"]
    for sid, a in index.items():
        out = summary.manifest["stages"][sid]["outputs"][a["path"]]
        assert (a["sha256"], a["size_bytes"]) == (out["sha256"], out["size_bytes"])
        assert a["test_accuracy_pct"] is not None and a["min_onnxruntime"]


def test_consumer_readme_says_what_to_ship_and_how(compress_run):
    # setup
    root, summary = compress_run
    # execute
    text = (root / "README.md").read_text()
    # assert
    # which model ships is measured (the fastest that meets the gates, issue 22): read it
    ship = summary.manifest["ship"]
    acc = summary.manifest["stages"][ship]["metrics"].get(
        "test_accuracy_pct", summary.manifest["stages"][ship]["metrics"].get(
            "ort_test_accuracy_pct"))
    assert f"**Ship `{ship}/model.onnx`**" in text
    assert f"{acc:.2f} %" in text and "onnxruntime>=1.18.0" in text
    assert f"examples/classify.py {root / ship / 'model.onnx'}" in text
    assert "student_int8_ort/model.ort" in text and "mean = [" in text
    assert "ms at batch 1" in text  # latency from the bench


def test_raw_test_data_is_left_for_consumers(compress_run):
    # setup
    from compress.data import DigitsData, load_dataset

    data = load_dataset(DigitsData())
    # execute
    with np.load(compress_run[0] / "test_data.npz", allow_pickle=False) as d:
        x, y = d["x"], d["y"]
    # assert: raw pixel values 0..16, which normalise to exactly the model's inputs
    assert x.shape == (360, 1, 8, 8) and x.min() == 0 and x.max() == 16
    assert (y == data.y_test).all()
    np.testing.assert_array_equal(((x - np.float64(data.mean[0])) / data.std[0])
                                  .astype(np.float32), data.x_test)


def _blocked_env(tmp_path: Path) -> dict:
    """PYTHONPATH with a torch and a compress that cannot be imported."""
    block = tmp_path / "block"
    (block / "compress").mkdir(parents=True)
    (block / "torch.py").write_text("raise ImportError('torch is not available here')\n")
    (block / "compress" / "__init__.py").write_text("raise ImportError('no compress here')\n")
    return {**os.environ, "PYTHONPATH": str(block), "PYTHONWARNINGS": "ignore"}


def test_classify_example_reproduces_the_accuracy_without_torch_or_compress(compress_run,
                                                                              tmp_path):
    # setup
    root, summary = compress_run
    env = _blocked_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, cwd=tmp_path,
                           capture_output=True, text=True)
    assert probe.returncode != 0  # the block works
    for sid, ext in (("student_int8", "onnx"), ("student_fp32", "onnx"),
                     ("student_int8_ort", "ort")):
        # execute
        proc = subprocess.run([sys.executable, str(REPO / "examples" / "classify.py"),
                               str(root / sid / f"model.{ext}")], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        # assert
        assert proc.returncode == 0, proc.stderr
        metrics = summary.manifest["stages"][sid]["metrics"]
        acc = metrics.get("test_accuracy_pct", metrics.get("ort_test_accuracy_pct"))
        assert f"accuracy: {acc:.4f} %" in proc.stdout
        assert "-> match" in proc.stdout


def test_consumer_files_are_rewritten_when_every_stage_is_cached(tmp_path):
    # setup
    pipeline = copy.deepcopy(TINY_PIPELINE)
    cfg = parse_pipeline(pipeline, "tiny.yaml")
    root = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None).root
    (root / "README.md").unlink()
    (root / "test_data.npz").unlink()
    # execute
    summary = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None)
    # assert
    assert summary.ran == [] and (root / "README.md").is_file()
    assert (root / "test_data.npz").is_file()
    assert "**Ship `teacher_onnx/model.onnx`**" in (root / "README.md").read_text()
