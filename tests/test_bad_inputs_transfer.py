"""Bad input of pretrained weights and the few-labels regime (issue 31), through the CLI, with
the harness of tests/test_bad_inputs.py: exit 2, one line naming the problem, nothing written."""

from __future__ import annotations

import os

import pytest
import torch
from click.testing import CliRunner

from compress.cli import cli
from tests.models.tv_mobilenet import state_dict
from tests.test_bad_inputs import Case, add, pipeline, snapshot


def weights_file(c: Case, name: str = "mnv2.pth", cut: int | None = None) -> str:
    """A torchvision-layout width-0.25 MobileNetV2 state dict (cut to `cut` bytes)."""
    path = c.tmp / name
    torch.save(state_dict(width_mult=0.25, classes=1000), path)
    if cut is not None:
        path.write_bytes(path.read_bytes()[:cut])
    return str(path)


def module_file(c: Case) -> str:
    path = c.tmp / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    return str(path)


def teacher_model(model: dict, weights, data: dict | None = None):
    """The tiny pipeline with its teacher's model replaced by `model` + `weights: <file>`."""
    def build(c: Case) -> list[str]:
        def mutate(p: dict) -> None:
            p["stages"][0]["model"] = {**model, "weights": weights(c)}
            if data is not None:
                p["data"].update(data)
        return pipeline(mutate)(c)
    return build


MNV2 = {"arch": "mobilenet_v2", "width_mult": 0.25}
UNLABELED = {"id": "s", "stage": "distill", "teacher": "teacher", "transfer": "unlabeled",
             "model": {"arch": "mlp", "hidden": [8]}, "epochs": 1}

BAD = [
    ("weights_of_another_arch", teacher_model({"arch": "mlp", "hidden": [32]}, weights_file),
     "field 'model.weights': "),
    ("weights_of_another_arch_keys", teacher_model({"arch": "mlp", "hidden": [32]},
                                                   weights_file),
     "missing 4 key(s), first 'features.1.weight'; unexpected 314 key(s), first "
     "'features.0.0.weight'"),
    ("weights_truncated", teacher_model(MNV2, lambda c: weights_file(c, cut=4000)),
     "truncated or damaged"),
    ("weights_pickled_module", teacher_model(MNV2, module_file),
     "torch.load(weights_only=True) refuses it"),
    ("weights_width_mult_mismatch", teacher_model({**MNV2, "width_mult": 0.5}, weights_file),
     "set width_mult to theirs"),
    ("weights_3_channels_on_1_channel_data", teacher_model(MNV2, weights_file),
     "3-channel inputs but the data has 1 channel(s); set `channels: 3`"),
    ("weights_file_missing", teacher_model(MNV2, lambda c: str(c.tmp / "none.pth")),
     "weights file not found"),
    ("labels_per_class_above_the_data", pipeline(lambda p: p["data"].update(
        labels_per_class=1000)), "labels_per_class 1000 is more than the training split holds"),
    ("labels_per_class_below_1", pipeline(lambda p: p["data"].update(labels_per_class=0)),
     "field 'labels_per_class': Input should be greater than or equal to 1"),
    ("transfer_unlabeled_without_unlabeled_images", pipeline(add(UNLABELED)),
     "field 'transfer': unlabeled, but the data has no unlabeled images"),
]


@pytest.mark.parametrize("name,build,needle", BAD, ids=[row[0] for row in BAD])
def test_bad_transfer_input_is_one_line_exit_2_and_writes_nothing(
        name, build, needle, tiny_run, tiny_checkpoint, tiny_onnx, tmp_path, monkeypatch):
    # setup
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    case = Case(work, tiny_checkpoint, tiny_onnx)
    argv = build(case)
    before = snapshot(tmp_path, tiny_run[0])
    # execute
    try:
        res = CliRunner().invoke(cli, argv, prog_name="compress")
    finally:
        for fd in case.held:
            os.close(fd)
    # assert
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert needle in lines[0], lines[0]
    assert snapshot(tmp_path, tiny_run[0]) == before
