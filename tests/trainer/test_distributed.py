"""DDP on the CPU with gloo: two processes train as one, rank 0 alone writes, the global batch
and the seed give the accuracy of one process; the process-group plumbing around it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, run_cli

# Tiny MNIST-1D (1,440 train / 160 val / 400 test). An MLP without BatchNorm: DDP then computes
# the single process's gradients exactly (the mean over equal shards of the global batch), so
# the comparison tests the sharding, seeding and model selection. With BatchNorm each rank
# normalises over its own share of the batch, which changes training a little by design (see
# the README); that buffers still agree across ranks is tested below.
DATA = {"source": "mnist1d", "num_samples": 2000, "seed": 0}
TEACHER = {"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [64, 64]},
           "epochs": 10, "batch_size": 64, "lr": 0.01, "augment_shift": 2, "patience": None,
           "device": "cpu"}
ONE_TEST_SAMPLE_PTS = 100 / 400  # accuracy points one of the 400 test samples is worth


def _pipeline(name: str, nproc: int) -> dict:
    teacher = {**TEACHER, "distributed": {"nproc": nproc}}
    return {"name": name, "data": DATA,
            "stages": [teacher, {"id": "teacher_onnx", "stage": "export", "input": "teacher"}]}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _env(tmp: Path) -> dict:
    # One thread per process: two processes share the machine's cores, as torchrun would set.
    return {**os.environ, "PYTHONWARNINGS": "ignore", "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}


def test_two_processes_train_like_one_and_only_rank_0_writes(tmp_path, write_yaml):
    # setup: the same pipeline in one process (in this one) and in two (launched by compress)
    from compress.config import parse_pipeline
    from compress.runner import run_pipeline

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes will have
    try:
        single = run_pipeline(parse_pipeline(_pipeline("single", 1), "single.yaml"),
                              tmp_path / "out", progress=False, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    path = write_yaml(_pipeline("ddp", 2), "ddp.yaml")
    # execute
    res = subprocess.run([sys.executable, "-m", "compress", "run", str(path), "--out",
                          str(tmp_path / "out"), "--no-progress"], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env=_env(scratch))
    # assert: completed, once
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("ran 2 stage(s), 0 cached") == 1
    assert res.stderr.count("[teacher] running train") == 1
    # only rank 0's files, and no staging folder or scratch folder left by either rank
    root = tmp_path / "out" / "ddp"
    # (report.json and the plots are written by rank 0 with report.md)
    written = {f for f in _files(root) if not f.endswith(".png")}
    assert written == {".lock", "manifest.json", "report.md", "report.json", "README.md",
                       "model.json", "test_data.npz",
                       "teacher/history.json", "teacher/metrics.json", "teacher/model.pt",
                       "teacher_onnx/metrics.json", "teacher_onnx/model.onnx",
                       "teacher_onnx/model.json"}
    assert not list(scratch.glob("compress-rank*"))
    manifest = json.loads((root / "manifest.json").read_text())
    ddp_m = manifest["stages"]["teacher"]["metrics"]
    one_m = single.manifest["stages"]["teacher"]["metrics"]
    assert manifest["world_size"] == 2 and ddp_m["world_size"] == 2 and one_m["world_size"] == 1
    assert ddp_m["precision"] == "fp32" and ddp_m["device"] == "cpu"
    assert ddp_m["train_cpu_time_s"] > 0 and ddp_m["train_wall_time_s"] > 0
    # same global batch and seed: the same accuracy within a point
    assert abs(ddp_m["test_accuracy_pct"] - one_m["test_accuracy_pct"]) <= 1.0, (ddp_m, one_m)
    # ORT and PyTorch round differently: on another CPU one test sample near a decision
    # boundary may flip, so they agree within one sample, not to the last bit
    onnx_acc = manifest["stages"]["teacher_onnx"]["metrics"]["ort_test_accuracy_pct"]
    assert abs(onnx_acc - ddp_m["test_accuracy_pct"]) <= ONE_TEST_SAMPLE_PTS + 1e-9


def test_train_command_under_torchrun(tmp_path):
    # setup
    out = tmp_path / "teacher"
    # execute: torchrun starts the processes; compress finds them in its environment
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "compress", "train", "--data", "{source: mnist1d, num_samples: 1000}",
         "--model", "{arch: mlp, hidden: [32]}", "--epochs", "2", "--batch-size", "32",
         "--device", "cpu", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=_env(tmp_path))
    # assert
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(f"wrote {out}/") == 1 and "world_size: 2" in res.stdout
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "metrics.json", "model.pt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".staging")] == []


def test_indivisible_global_batch_is_one_line_before_any_process_starts(tmp_path, write_yaml):
    # setup
    raw = _pipeline("odd", 2)
    raw["stages"][0]["batch_size"] = 63
    path = write_yaml(raw)
    # execute
    res = run_cli("run", str(path), "--out", str(tmp_path / "out"))
    # assert
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: {path}: stage 'teacher', field 'batch_size': 63 does not split evenly over 2 "
        "processes; use a multiple of 2 (batch_size is the global batch)"]
    assert not (tmp_path / "out").exists()


def test_stages_must_agree_on_the_process_count(tiny_pipeline):
    from compress.config import parse_pipeline
    from compress.errors import ConfigError

    tiny_pipeline["stages"][0]["distributed"] = {"nproc": 2}
    tiny_pipeline["stages"].insert(1, {**tiny_pipeline["stages"][0], "id": "other",
                                       "distributed": {"nproc": 4}})
    with pytest.raises(ConfigError, match="stage 'other', field 'distributed.nproc': 4 differs "
                                          "from 2 in stage 'teacher'"):
        parse_pipeline(tiny_pipeline, "p.yaml")


def test_without_a_process_group_every_helper_is_a_no_op():
    # setup
    from compress import launch
    from compress.trainer import distributed

    model = torch.nn.BatchNorm1d(3)
    # execute / assert: the DDP side (trainer/) and the launching side (compress.launch)
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.wrap(model, torch.device("cpu")) is model
    assert distributed.all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert launch.world_size() == 1 and launch.is_main() and launch.rank_prefix() == ""
    assert launch.run_on_main(lambda: 7) == 7
    assert launch.broadcast_object({"a": 1}) == {"a": 1}


# --- a distillation-style loss under DDP and bf16: what distill and prune's fine-tuning do ----


class _Student(torch.nn.Module):
    """A student (with BatchNorm) plus a trainable projection used only in the loss, as a hint
    layer's is."""

    def __init__(self, inputs: int):
        super().__init__()
        self.student = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(inputs, 16), torch.nn.BatchNorm1d(16),
            torch.nn.ReLU(), torch.nn.Linear(16, 10))
        self.proj = torch.nn.Linear(16, 10, bias=False)
        self.feats = None
        self.student[3].register_forward_hook(lambda _m, _i, out: setattr(self, "feats", out))

    def forward(self, x):
        return self.student(x)


def _distill_worker(rank: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from compress import launch
    from compress.data import DigitsData, load_dataset
    from compress.trainer.training import TrainOptions, fit

    torch.set_num_threads(1)
    data = load_dataset(DigitsData())
    torch.manual_seed(1)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).requires_grad_(False)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.manual_seed(0)
    model = _Student(64)
    proj_before = model.proj.weight.detach().clone()

    def loss_fn(logits, targets, inputs):
        assert torch.is_autocast_enabled("cpu")  # called inside autocast
        soft = teacher(inputs)
        hint = model.proj(model.feats).float()
        return (torch.nn.functional.cross_entropy(logits.float(), targets)
                + torch.nn.functional.mse_loss(hint, soft.float().detach()))

    opts = TrainOptions(epochs=2, batch_size=64, lr=0.01, device="cpu", precision="bf16",
                        patience=None, distributed={"timeout_s": 120})
    with launch.process_group(opts.distributed):
        res = fit(model, data, opts, loss_fn=loss_fn, progress=False)
    torch.save({"state": res.state_dict, "world": res.world_size, "precision": res.precision,
                "proj_moved": bool((model.proj.weight.detach() - proj_before).abs().sum() > 0),
                "teacher_same": all(torch.equal(teacher.state_dict()[k], v)
                                    for k, v in teacher_before.items()),
                "acc": res.best_val_accuracy_pct}, Path(out) / f"rank{rank}.pt")


def test_custom_loss_with_extra_parameters_trains_under_ddp_and_bf16(tmp_path):
    # setup: a free port for the rendezvous
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # execute
    torch.multiprocessing.spawn(_distill_worker, args=(port, str(tmp_path)), nprocs=2)
    # assert: both ranks kept the same fp32 weights and BatchNorm statistics; the projection
    # trained, the teacher untouched
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == 2 and r0["precision"] == "bf16"
    assert r0["proj_moved"] and r0["teacher_same"] and r0["acc"] > 50
    for k, v in r0["state"].items():
        assert v.dtype in (torch.float32, torch.int64)
        torch.testing.assert_close(v, r1["state"][k], rtol=0, atol=0)
    assert any(k.startswith("proj.") for k in r0["state"])
    assert "student.2.running_mean" in r0["state"]
