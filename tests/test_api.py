"""The public Python API on a module the user wrote: arrays in, typed results out, options
validated as in YAML."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import compress
from compress.errors import ConfigError, DataError
from compress.measure.ort import read_metadata

FAST = {"epochs": 1, "batch_size": 128, "lr": 0.01, "device": "cpu", "patience": None}


class UserNet(nn.Module):
    """Written by the user: compress has never seen this class."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, groups=width),
                                  nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        return self.out(self.body(x))


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images[:, None].astype(np.float32), d.target
    return compress.data.from_arrays(x[:1400], y[:1400], x[1400:], y[1400:])


def test_user_module_goes_from_arrays_to_a_benchmarked_int8_onnx(data, tmp_path):
    # setup
    torch.manual_seed(0)
    # execute
    teacher = compress.train(UserNet(32), data, **{**FAST, "epochs": 4, "lr": 0.03})
    student = compress.distill(teacher.model, UserNet(16), data, temperature=4, **FAST)
    pruned = compress.prune(student.model, data, teacher=teacher.model, ratio=0.5, steps=1,
                            round_to=4, **FAST)
    fp32 = compress.export(pruned.model, tmp_path / "student.onnx", data)
    int8 = compress.quantize(fp32.path, data, calibration={"samples": 64},
                             select_batch_sizes=[1], select_time_s=0.02, format="qdq",
                             activation_type="uint8", reduce_range="false")
    bench = compress.bench([fp32.path, int8.path], data, batch_sizes=[1], min_runs=5,
                           min_time_s=0.0, warmup_runs=1, memory=False, energy_time_s=0)
    # assert
    assert isinstance(teacher, compress.ModelResult) and teacher.metrics["test_accuracy_pct"] > 30
    assert "distillation_gain_pts" in student.metrics
    assert student.metrics["teacher_runtime"] == "pytorch"
    assert pruned.model.out.in_features == 8 and pruned.metrics["params"] < \
        pruned.metrics["params_before"]
    assert fp32.path.is_file() and fp32.metrics["parity_max_abs_diff"] < 1e-4
    meta = read_metadata(fp32.path)
    assert meta["compress.data"]["source"] == "arrays"
    assert meta["compress.preprocessing"]["mean"] == pytest.approx(data.mean)
    assert int8.path == tmp_path / "student_int8" / "model.onnx" and int8.path.is_file()
    assert set(bench.metrics) >= {"student.b1_t1.p50_ms", "student_int8.b1_t1.p50_ms"}
    assert "student_int8" in bench.summary()


def test_an_onnx_file_can_teach_through_the_api(data, tiny_onnx):
    # execute: tiny_onnx was trained on digits' own split; any digits classifier will do
    r = compress.distill(tiny_onnx, UserNet(8), data, compare_without_teacher=False,
                         **{**FAST, "epochs": 3, "lr": 0.03})
    # assert
    assert r.metrics["teacher_runtime"] == "onnxruntime"
    assert r.metrics["test_accuracy_pct"] > 10


def test_options_are_validated_like_the_yaml(data):
    # execute / assert: the same message a pipeline file gets, naming the argument
    with pytest.raises(ConfigError, match=r"compress.distill: argument 'temperature': .*greater "
                                          r"than 0 \(got -1\)"):
        compress.distill(UserNet(), UserNet(), data, temperature=-1)
    with pytest.raises(ConfigError, match="argument 'epoch': unknown field 'epoch'; did you "
                                          "mean 'epochs'"):
        compress.train(UserNet(), data, epoch=3)


def test_bad_arrays_and_bad_models_are_one_line():
    # execute / assert
    x = np.zeros((20, 1, 8, 8), np.float32)
    with pytest.raises(DataError, match="20 inputs but 19 labels"):
        compress.data.from_arrays(x, np.zeros(19, int), x, np.zeros(20, int))
    data = compress.data.from_arrays(x, np.arange(20) % 2, x, np.arange(20) % 2)
    with pytest.raises(ConfigError, match=r"outputs \[2, 10\] .* 2 classes"):
        compress.train(UserNet(), data, **FAST)
    with pytest.raises(ConfigError, match="arch 'python' imports .*trust_code=True"):
        compress.train({"arch": "python", "factory": "my_models:build"}, data, **FAST)


def test_import_compress_stays_light():
    # execute: what `compress --help` pays for
    code = ("import sys, compress; compress.__version__; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "compress.data; assert 'torch' not in sys.modules, 'torch by data'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    # assert
    assert res.returncode == 0, res.stderr


@pytest.mark.slow  # ~20 s; tests/onnx/test_contract.py is its fast sibling (export alone)
def test_an_nn_sequential_student_goes_through_the_whole_chain(data, tmp_path):
    # setup: a depthwise-separable student written as nn.Sequential (forward's argument is
    # `input`), the teacher as the user trained it
    torch.manual_seed(0)
    teacher = compress.train(UserNet(16), data, **{**FAST, "epochs": 2, "lr": 0.03}).model
    student = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    # execute
    distilled = compress.distill(teacher, student, data, compare_without_teacher=False,
                                 **{**FAST, "epochs": 2, "lr": 0.03})
    pruned = compress.prune(distilled.model, data, ratio=0.5, steps=1, round_to=4, **FAST)
    fp32 = compress.export(pruned.model, tmp_path / "seq.onnx", data)
    int8 = compress.quantize(fp32.path, data, calibration={"samples": 64},
                             select_batch_sizes=[1], select_time_s=0.02)
    # assert
    assert pruned.metrics["params"] < pruned.metrics["params_before"]
    assert fp32.metrics["parity_max_abs_diff"] < 1e-4
    assert fp32.metrics["ort_test_accuracy_pct"] == pytest.approx(
        fp32.metrics["torch_test_accuracy_pct"], abs=0.5)
    assert int8.path.is_file() and int8.metrics["test_accuracy_pct"] > 20


def test_a_state_dict_teacher_is_one_line_and_a_checkpoint_is_rebuilt(data, tiny_checkpoint):
    # setup
    state = UserNet(8).state_dict()
    # execute / assert: weights without their module cannot teach
    with pytest.raises(ConfigError, match=r"argument 'teacher': a state dict .*'body.0.weight'.*"
                                          r"load it into the module first: .*load_state_dict"):
        compress.distill(state, UserNet(8), data, **FAST)
    with pytest.raises(ConfigError, match="argument 'teacher': an nn.Module or the path"):
        compress.distill(42, UserNet(8), data, **FAST)
    # a compress checkpoint names its model: accepted as a path and as torch.load's dict
    for teacher in (tiny_checkpoint, torch.load(tiny_checkpoint, weights_only=True)):
        r = compress.distill(teacher, UserNet(8), data, compare_without_teacher=False, **FAST)
        assert r.metrics["teacher_runtime"] == "pytorch"


@pytest.fixture(scope="module")
def small():
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images[:, None].astype(np.float32), d.target
    return compress.data.from_arrays(x[:300], y[:300], x[300:400], y[300:400])


def test_training_shows_progress_unless_asked_not_to(small, capsys):
    # execute: stderr is no terminal under pytest, so progress is a plain line per epoch
    compress.train(UserNet(8), small, **FAST)
    shown = capsys.readouterr().err
    compress.train(UserNet(8), small, progress=False, **FAST)
    hidden = capsys.readouterr().err
    # assert
    assert "train: epoch 1/1, train loss" in shown and "val acc" in shown
    assert "train loss" not in hidden and "val acc" not in hidden  # warnings may still show


def test_a_teacher_that_fails_on_compress_inputs_is_warned_about(small):
    # setup: an untrained teacher stands in for one trained on raw inputs (near chance here)
    torch.manual_seed(0)
    # execute
    r = compress.distill(UserNet(8), UserNet(8), small, compare_without_teacher=False,
                         progress=False, **FAST)
    # assert
    assert r.metrics["teacher_test_accuracy_pct"] < 30
    assert "the teacher scores" in r.metrics["teacher_warning"]
    assert "normalised per channel" in r.metrics["teacher_warning"]
