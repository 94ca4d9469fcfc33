"""Batches: one global batch per step whatever the number of processes, split like
DistributedSampler; gathered in-process or by DataLoader workers, with the same result."""

from __future__ import annotations

import pytest
import torch

from compress.data import DigitsData, load_dataset
from compress.models import build_model
from compress.trainer.batches import (
    DEVICE_RESIDENT_MAX_BYTES,
    TrainBatches,
    epoch_plan,
    loader_workers,
    shift,
)
from compress.trainer.training import TrainOptions, fit


def test_shift_translates_with_edge_fill():
    x = torch.arange(10.0).reshape(1, 1, 10).repeat(50, 1, 1)
    out = shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    firsts = set(out[:, 0, 0].tolist())
    assert firsts <= {0.0, 1.0, 2.0} and len(firsts) > 1  # shifted by -2..2, edges replicated


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_share_out_the_same_global_batches(world):
    # setup
    x = torch.arange(103.0).reshape(103, 1, 1).repeat(1, 1, 5)
    y = torch.arange(103)
    one = epoch_plan(103, 16, torch.Generator().manual_seed(3), 1, max_shift=1)
    many = epoch_plan(103, 16, torch.Generator().manual_seed(3), world, max_shift=1)
    # execute
    shares = [list(TrainBatches(x, y, torch.device("cpu"), rank=r, world=world, max_shift=1)
                   .epoch(many)) for r in range(world)]
    # assert: the same draws at every world size (the last, short batch aside), and each step's
    # shares add up to exactly its global batch
    for (i1, o1), (iw, ow) in zip(one, many, strict=False):
        assert torch.equal(i1, iw) and torch.equal(o1, ow)
    for step, (idx, _) in enumerate(many):
        got = torch.cat([shares[r][step][1] for r in range(world)])
        assert sorted(got.tolist()) == sorted(idx.tolist())
        assert len({len(shares[r][step][1]) for r in range(world)}) == 1 or step == len(many) - 1


def test_too_small_last_batch_is_skipped_for_every_rank():
    plan = epoch_plan(10, 4, torch.Generator().manual_seed(0), world=2)
    assert [len(i) for i, _ in plan] == [4, 4]  # the last 2 would leave each rank one sample
    assert [len(i) for i, _ in epoch_plan(10, 4, torch.Generator().manual_seed(0))] == [4, 4, 2]


def test_automatic_workers_rule():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert loader_workers(None, cpu, 10 * DEVICE_RESIDENT_MAX_BYTES) == 0
    assert loader_workers(None, cuda, DEVICE_RESIDENT_MAX_BYTES) == 0
    assert loader_workers(None, cuda, DEVICE_RESIDENT_MAX_BYTES + 1) >= 1
    assert loader_workers(3, cpu, 1) == 3


def test_dataloader_workers_see_the_same_batches_as_the_training_process():
    # setup
    data = load_dataset(DigitsData())

    def run(workers):
        torch.manual_seed(0)
        model = build_model({"arch": "mlp", "hidden": [32]}, data.input_shape, data.num_classes)
        opts = TrainOptions(epochs=2, batch_size=128, lr=0.01, device="cpu", augment_shift=1,
                            num_workers=workers)
        return fit(model, data, opts, progress=False)

    # execute
    memory, loader = run(0), run(1)
    # assert
    assert memory.history == loader.history
    for k, v in memory.state_dict.items():
        torch.testing.assert_close(v, loader.state_dict[k], rtol=0, atol=0)
