"""Device and precision: CUDA refused clearly where there is none, auto means the CPU there,
bf16 autocast trains on the CPU with fp32 weights, fp16 on the CPU is refused in one line."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from compress.data import DigitsData, load_dataset
from compress.errors import StageError
from compress.models import build_model
from compress.trainer.devices import MixedPrecision, resolve_device
from compress.trainer.training import TrainOptions, fit
from tests.conftest import run_cli, tree_snapshot

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the machine without CUDA")


def test_cuda_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StageError, match="no CUDA device is available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(StageError, match="on the CPU use precision: bf16 or fp32"):
        MixedPrecision("fp16", resolve_device("auto"))


def test_bf16_autocast_trains_on_the_cpu_and_keeps_fp32_weights():
    # setup
    data = load_dataset(DigitsData())
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden": [32]}, data.input_shape, data.num_classes)
    opts = TrainOptions(epochs=3, batch_size=128, lr=0.01, device="cpu", precision="bf16")
    # execute
    res = fit(model, data, opts, progress=False)
    # assert
    assert res.precision == "bf16" and res.device == "cpu" and res.best_val_accuracy_pct > 80
    assert all(v.dtype == torch.float32 for v in res.state_dict.values() if v.is_floating_point())


def test_fp16_on_the_cpu_is_refused_when_the_config_loads():
    with pytest.raises(ValidationError, match="fp16 needs CUDA; on the CPU use precision bf16"):
        TrainOptions(device="cpu", precision="fp16")


@no_cuda
@pytest.mark.parametrize("option,value,needle", [
    ("--device", "cuda", "device: cuda was asked for but no CUDA device is available"),
    ("--precision", "fp16", "precision: fp16 needs a CUDA device"),
])
def test_what_needs_cuda_is_one_line_exit_2_on_a_machine_without(tmp_path, option, value, needle):
    # execute
    res = run_cli("train", "--data", "digits", "--out", str(tmp_path / "t"), option, value)
    # assert
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("error: compress train: stage 'train': ") and needle in lines[0]
    assert tree_snapshot(tmp_path / "t") == {}


@no_cuda
def test_cuda_in_a_pipeline_fails_before_any_stage_runs(tmp_path, tiny_pipeline, write_yaml):
    # setup
    tiny_pipeline["stages"][0]["device"] = "cuda"
    path = write_yaml(tiny_pipeline)
    # execute
    res = run_cli("run", str(path), "--out", str(tmp_path / "out"))
    # assert
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert f"error: {path}: stage 'teacher': device: cuda was asked for" in res.stderr
    assert not (tmp_path / "out").exists()


@no_cuda
def test_auto_is_the_cpu_on_a_machine_without_cuda():
    # setup
    data = load_dataset(DigitsData())
    model = build_model({"arch": "mlp", "hidden": [8]}, data.input_shape, data.num_classes)
    # execute
    res = fit(model, data, TrainOptions(epochs=1, device="auto"), progress=False)
    # assert
    assert res.device == "cpu" and next(model.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mnist1d_teacher_trains_on_cuda_in_mixed_precision(precision):
    # setup
    from compress.data import Mnist1dData

    data = load_dataset(Mnist1dData(num_samples=4000))
    torch.manual_seed(0)
    model = build_model({"arch": "resnet", "width": 16, "stages": 2, "kernel_size": 5},
                        data.input_shape, data.num_classes)
    opts = TrainOptions(epochs=10, batch_size=64, lr=0.01, augment_shift=2, device="cuda",
                        precision=precision, patience=None)
    # execute
    res = fit(model, data, opts, progress=False)
    # assert: trained on the GPU, weights still fp32, and learned (MNIST-1D chance is 10 %)
    assert res.device.startswith("cuda") and res.precision == precision
    assert all(v.dtype == torch.float32 for v in res.state_dict.values() if v.is_floating_point())
    assert res.best_val_accuracy_pct > 70


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_torch_stage_runs_on_cuda(tmp_path):
    """train -> distill -> prune (fine-tuned with the teacher) -> qat, all with device: cuda,
    each stage loading the previous one's CPU checkpoint (the prune stage once failed there on
    mixed devices)."""
    # setup
    from compress.config import parse_pipeline
    from compress.runner import run_pipeline

    fit_opts = {"epochs": 6, "batch_size": 128, "lr": 0.01, "device": "cuda"}
    resnet = {"arch": "resnet", "width": 16, "stages": 1, "blocks_per_stage": 1}
    pipeline = {"name": "cuda", "data": {"source": "digits", "seed": 0}, "stages": [
        {"id": "teacher", "stage": "train", "model": resnet, **fit_opts},
        {"id": "student", "stage": "distill", "teacher": "teacher",
         "model": resnet | {"width": 8}, **fit_opts},
        {"id": "pruned", "stage": "prune", "input": "teacher", "teacher": "teacher",
         "ratio": 0.25, "steps": 1, "importance": "taylor", **fit_opts},
        {"id": "qat", "stage": "qat", "input": "pruned", **fit_opts | {"lr": 1e-3}},
    ]}
    cfg = parse_pipeline(pipeline, "cuda.yaml")
    # execute
    summary = run_pipeline(cfg, tmp_path, progress=False, log=lambda m: None)
    # assert: every stage ran and learned something (digits chance is 10 %)
    stages = summary.manifest["stages"]
    metrics = {s: stages[s]["metrics"] for s in ("teacher", "student", "pruned", "qat")}
    assert metrics["teacher"]["device"].startswith("cuda")
    accuracy = {s: m["test_accuracy_pct"] for s, m in metrics.items()}
    assert all(a > 30 for a in accuracy.values()), accuracy
