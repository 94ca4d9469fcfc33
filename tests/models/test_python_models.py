"""`model: {arch: python, factory: ...}`: the user's own module through train -> distill ->
prune -> export -> quantize, consent, safe checkpoints, and every bad input as one line."""

from __future__ import annotations

import textwrap

import pytest
import torch

from compress import artifacts
from compress.config import load_pipeline
from compress.errors import ConfigError
from compress.runner import run_pipeline
from tests.conftest import run_cli

USER_MODELS = textwrap.dedent('''
    from torch import nn

    class Tiny(nn.Module):
        """stem conv -> depthwise -> pointwise (+ residual) -> pool -> linear."""
        def __init__(self, width, classes):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width),
                                      nn.ReLU())
            self.dw = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width),
                                    nn.BatchNorm2d(width), nn.ReLU())
            self.pw = nn.Sequential(nn.Conv2d(width, width, 1), nn.BatchNorm2d(width))
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(width, classes)

        def forward(self, x):
            x = self.stem(x)
            return self.fc(self.pool(x + self.pw(self.dw(x))))

    def build(width=8, classes=10):
        return Tiny(width, classes)

    NOT_CALLABLE = 5

    def raises(**kw):
        raise RuntimeError("boom")

    def not_a_module(**kw):
        return "a string"
''')

FAST = {"epochs": 1, "batch_size": 128, "lr": 0.01, "device": "cpu", "patience": None}


def _pipeline(model: dict, name: str = "user") -> dict:
    return {"name": name, "data": {"source": "digits", "seed": 0},
            "stages": [{"id": "teacher", "stage": "train", "model": model, **FAST}]}


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "my_models.py").write_text(USER_MODELS)
    return tmp_path


def _load(user_dir, write_yaml, pipeline):
    return load_pipeline(write_yaml(pipeline, "pipeline.yaml"))


def test_user_model_trains_distills_prunes_exports_and_quantizes(user_dir, write_yaml, tmp_path):
    # setup: the module lives beside the pipeline file only
    pipeline = _pipeline({"arch": "python", "factory": "my_models:build",
                          "kwargs": {"width": 16}})
    pipeline["stages"] += [
        {"id": "student", "stage": "distill", "teacher": "teacher", "compare_without_teacher":
         False, "model": {"arch": "python", "factory": "my_models:build", "kwargs": {"width": 8}},
         **FAST},
        {"id": "pruned", "stage": "prune", "input": "student", "ratio": 0.5, "steps": 1,
         "round_to": 2, **FAST},
        {"id": "fp32", "stage": "export", "input": "pruned", "parity_samples": 64},
        {"id": "int8", "stage": "quantize", "input": "fp32", "calibration": {"samples": 64},
         "select_batch_sizes": [1], "select_time_s": 0.02, "format": "qdq",
         "activation_type": "uint8", "reduce_range": "false",
         "narrow_convs": "int8"},  # every conv int8: fp32 placement is chosen by timing
    ]
    cfg = _load(user_dir, write_yaml, pipeline)
    # execute
    summary = run_pipeline(cfg, tmp_path / "out", progress=False, log=lambda m: None,
                           trust_code=True)
    # assert: the checkpoint is plain data naming the factory, its kwargs and module hash
    raw = torch.load(summary.root / "pruned" / "model.pt", weights_only=True)
    spec = raw["model"]
    assert spec["factory"] == "my_models:build" and spec["kwargs"] == {"width": 8}
    assert spec["source_sha256"] == artifacts.sha256_file(user_dir / "my_models.py")
    assert spec["pruned_attributes"]["dw.0"]["groups"] == 4  # depthwise: 8 -> 4 channels
    m = summary.manifest["stages"]
    assert m["pruned"]["metrics"]["params"] < m["pruned"]["metrics"]["params_before"]
    assert m["fp32"]["metrics"]["parity_max_abs_diff"] < 1e-4
    meta = summary.manifest["stages"]["int8"]
    assert meta["metrics"]["int8_weight_fraction"] > 0.5


def test_editing_the_factory_module_reruns_the_stage(user_dir, write_yaml, tmp_path):
    # setup
    cfg = _load(user_dir, write_yaml, _pipeline({"arch": "python", "factory": "my_models:build"}))
    first = cfg.stages[0].model.source_sha256
    # execute: a comment changes the module's bytes, so the config (and cache key) change
    (user_dir / "my_models.py").write_text(USER_MODELS + "\n# edited\n")
    again = _load(user_dir, write_yaml, _pipeline({"arch": "python",
                                                   "factory": "my_models:build"}))
    # assert
    assert again.stages[0].model.source_sha256 != first
    assert again.stages[0].hash_payload() != cfg.stages[0].hash_payload()


BAD_FACTORIES = [
    ("my_models:missing", "has no 'missing'"),
    ("my_models:NOT_CALLABLE", "not callable"),
    ("my_models:raises", "raised RuntimeError: boom"),
    ("my_models:not_a_module", "returned a str, not a torch.nn.Module"),
]


@pytest.mark.parametrize("factory,message", BAD_FACTORIES)
def test_bad_factory_is_one_line_and_writes_nothing(user_dir, write_yaml, tmp_path, factory,
                                                    message):
    # setup
    cfg = _load(user_dir, write_yaml, _pipeline({"arch": "python", "factory": factory}))
    # execute
    with pytest.raises(ConfigError) as e:
        run_pipeline(cfg, tmp_path / "out", progress=False, log=lambda m: None,
                     trust_code=True)
    # assert
    assert message in str(e.value) and "stage 'teacher', field 'model.factory'" in str(e.value)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_output_that_is_not_the_class_count_is_refused(user_dir, write_yaml, tmp_path):
    # setup
    cfg = _load(user_dir, write_yaml, _pipeline({"arch": "python", "factory": "my_models:build",
                                                 "kwargs": {"classes": 7}}))
    # execute
    with pytest.raises(ConfigError, match=r"outputs \[2, 7\].*10 classes"):
        run_pipeline(cfg, tmp_path / "out", progress=False, log=lambda m: None,
                     trust_code=True)
    # assert
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("factory,message", [
    ("../elsewhere:build", "outside the allowed places"),
    ("not_there:build", "module 'not_there' not found beside the pipeline file"),
])
def test_module_outside_the_allowed_places_is_refused_at_load(user_dir, write_yaml, factory,
                                                              message):
    # execute / assert
    with pytest.raises(ConfigError, match=message) as e:
        _load(user_dir, write_yaml, _pipeline({"arch": "python", "factory": factory}))
    assert "stage 'teacher', field 'model" in str(e.value)


def test_arch_python_without_trust_code_exits_2_before_writing(user_dir, write_yaml, tmp_path):
    # setup
    path = write_yaml(_pipeline({"arch": "python", "factory": "my_models:build"}))
    # execute
    res = run_cli("run", str(path), "--out", str(tmp_path / "out"))
    # assert
    assert res.returncode == 2
    line = res.stderr.strip().splitlines()[-1]
    assert "stage 'teacher', field 'model.arch'" in line and "--trust-code" in line
    assert not (tmp_path / "out").exists()
