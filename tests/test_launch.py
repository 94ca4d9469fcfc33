"""compress.launch: when compress starts torch's launcher itself, the one process group a
pipeline's training stages share, and the helpers that are no-ops in a single process."""

from __future__ import annotations

import pytest

from compress import launch
from compress.errors import ConfigError, MirroredError, StageError
from compress.stages.export import ExportConfig
from compress.stages.train import TrainConfig


def _train(sid: str, **distributed) -> TrainConfig:
    return TrainConfig(id=sid, model={"arch": "mlp", "hidden": [8]}, distributed=distributed)


def test_compress_launches_only_when_asked_for_several_processes_without_a_launcher(
        monkeypatch):
    # setup
    for var in launch.LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    two, one = launch.pipeline_options([_train("a", nproc=2)]), launch.pipeline_options([])
    # execute / assert
    assert launch.should_launch(two) and not launch.should_launch(one)
    monkeypatch.setenv("RANK", "0")  # under torchrun: join its group instead
    assert not launch.should_launch(two)


def test_the_stages_share_one_group_the_largest_asked_for():
    # setup
    stages = [_train("a", timeout_s=60), ExportConfig(id="onnx", input="a"),
              _train("b", nproc=3, timeout_s=5000)]
    # execute
    opts = launch.pipeline_options(stages, "p.yaml")
    # assert: the non-training stage is ignored; nproc and the longest timeout win
    assert (opts.nproc, opts.backend, opts.timeout_s) == (3, "auto", 5000)


def test_two_backends_cannot_share_a_group():
    # setup
    stages = [_train("a", backend="gloo"), _train("b", backend="nccl")]
    # execute / assert: the error names the file, both stages and the field
    with pytest.raises(ConfigError, match="p.yaml: stage 'b', field 'distributed.backend': "
                                          "'nccl' differs from 'gloo' in stage 'a'"):
        launch.pipeline_options(stages, "p.yaml")


def test_rank_prefix_names_ranks_other_than_0(monkeypatch):
    # setup
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    # execute
    other = launch.rank_prefix()
    monkeypatch.setenv("RANK", "0")
    # assert
    assert other == "[rank 3] " and launch.rank_prefix() == ""


def test_in_one_process_rank_0_runs_everything_and_errors_are_its_own():
    # setup
    err = StageError("boom")
    # execute / assert
    assert launch.rank() == 0 and launch.world_size() == 1 and launch.is_main()
    assert launch.run_on_main(lambda: {"x": 1}) == {"x": 1}
    assert launch.collective_error(err) is err and not isinstance(err, MirroredError)
    with pytest.raises(StageError):
        launch.run_on_main(lambda: (_ for _ in ()).throw(err))
