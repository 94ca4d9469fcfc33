"""The text stages as commands, one at a time, each reading the files the previous one wrote:
pretrained -> embed-distill -> embed-export -> embed-quantize -> embed-bench (tiny random BERT)."""

from __future__ import annotations

import pytest

from compress import artifacts
from tests.conftest import run_cli, tree_snapshot

pytest.importorskip("transformers")

DATA = "{source: pydoc, seed: 0, max_sentences: 160}"


def _ok(*args: str) -> None:
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1].startswith("wrote ")


def test_text_stages_one_command_at_a_time(tiny_bert_dir, tmp_path):
    # setup
    t, s, s_onnx, q, t_onnx, b = (tmp_path / n for n in ("t", "s", "s_onnx", "q", "t_onnx", "b"))
    # execute
    _ok("pretrained", "--data", DATA, "--model", str(tiny_bert_dir), "--out", str(t))
    _ok("embed-distill", str(t / "model.pt"), "--layers", "0", "--layers", "2",
        "--ff-neurons", "32", "--epochs", "1", "--out", str(s))
    _ok("embed-export", str(s / "model.pt"), "--out", str(s_onnx))
    _ok("embed-quantize", str(s_onnx / "model.onnx"), "--teacher", str(t / "model.pt"),
        "--modes", "dynamic", "--latency-time-s", "0", "--out", str(q))
    _ok("embed-export", str(t / "model.pt"), "--out", str(t_onnx))
    _ok("embed-bench", str(t_onnx / "model.onnx"), str(q / "model.onnx"), "--teacher",
        str(t / "model.pt"), "--warmup-runs", "1", "--min-runs", "3", "--min-time-s", "0",
        "--out", str(b))
    # assert: the same files and metrics as the pipeline stages, models named by their folder
    assert (t / "embeddings.npz").is_file() and (q / "tokenizer.json").is_file()
    m = artifacts.read_json(b / "bench.json")["metrics"]
    assert m["t_onnx.test_cosine"] == pytest.approx(1.0, abs=1e-4)
    assert 0 < m["q.test_cosine"] <= 1 and 0 <= m["q.overlap_at_10"] <= m["q.recall_at_10"] <= 1
    assert m["q.size_reduction"] > 1


def test_a_text_command_given_image_data_is_one_line_exit_2(tmp_path):
    # execute: embed-distill on a checkpoint of an image model
    ckpt = tmp_path / "t"
    assert run_cli("train", "--data", "digits", "--model", "{arch: mlp, hidden: [8]}",
                   "--epochs", "1", "--out", str(ckpt)).returncode == 0
    res = run_cli("embed-distill", str(ckpt / "model.pt"), "--out", str(tmp_path / "s"))
    missing = run_cli("embed-quantize", str(tmp_path / "none.onnx"), "--teacher",
                      str(ckpt / "model.pt"), "--out", str(tmp_path / "q"))
    # assert
    for r in (res, missing):
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "none.onnx: not found" in missing.stderr
    assert tree_snapshot(tmp_path / "s") == {} and tree_snapshot(tmp_path / "q") == {}


def test_a_model_dir_that_is_not_a_bert_encoder_is_one_line_exit_2(tmp_path):
    # setup: a folder with a config.json of another architecture
    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    # execute
    res = run_cli("pretrained", "--data", DATA, "--model-dir", str(folder), "--out",
                  str(tmp_path / "t"))
    # assert: what is wrong, where, what is supported; nothing written
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"model_dir {folder}: model_type 'gpt2' is not supported" in res.stderr
    assert tree_snapshot(tmp_path / "t") == {}
