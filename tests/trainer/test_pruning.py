"""Pruning engine: the ratio keeps what it says (torch-pruning's truncation and round-down
compensated) and the per-layer channel report warns where rounding removed clearly more."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from compress.models import build_model, parse_model_spec
from compress.trainer.pruning import (
    channel_report,
    channels_text,
    kept_as_asked,
    layer_widths,
    structured,
)


def _cfg(ratio: float, steps: int = 1, round_to: int = 8):
    return SimpleNamespace(ratio=ratio, steps=steps, importance="l2", global_pruning=False,
                           max_layer_ratio=0.9, round_to=round_to, head_ratio=None)


def test_ratio_0167_keeps_40_of_48_channels_in_a_residual_model():
    # setup: the digits demo's student (48 channels, the stem coupled to the block by the add)
    spec = parse_model_spec({"arch": "resnet", "width": 48, "stages": 1, "blocks_per_stage": 1})
    model = build_model(spec, [1, 8, 8], 10)
    before = layer_widths(model, model.head)
    # execute: torch-pruning alone keeps int(48 x 0.833) = 39, rounded down to 32
    structured(model, model.head, torch.randn(2, 1, 8, 8), _cfg(0.167, steps=2), None,
               lambda m, step: None, "cpu", lambda *a: None)
    rows, warnings = channel_report(before, layer_widths(model, model.head), 0.167, 8)
    # assert
    assert [r["kept"] for r in rows] == [40, 40, 40]
    assert channels_text(rows) == "stem.0 48->40, blocks.0.conv1 48->40, blocks.0.conv2 48->40"
    assert warnings == []
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_rounding_that_removes_clearly_more_than_asked_is_warned():
    # setup: ratio 0.1 of 48 asks 43.2 channels; multiples of 8 give 40 (16.7 % removed)
    before, after = {"stem.0": 48, "blocks.0.conv1": 96}, {"stem.0": 40, "blocks.0.conv1": 88}
    # execute
    rows, warnings = channel_report(before, after, 0.1, 8)
    # assert: the 48-wide layer lost 6.7 points more than asked, the 96-wide one 1.7
    assert rows[0] == {"layer": "stem.0", "before": 48, "asked": 43.2, "kept": 40,
                       "removed_pct": 16.67}
    assert len(warnings) == 1 and "stem.0" in warnings[0] and "round_to" in warnings[0]


def test_kept_as_asked_rounds_to_the_nearest_multiple():
    # execute / assert
    assert kept_as_asked(48, 0.167, 8) == 40
    assert kept_as_asked(32, 0.3, 8) == 24       # 22.4 -> 24, not down to 16
    assert kept_as_asked(16, 0.9, 8) == 8        # at least one multiple
    assert kept_as_asked(20, 0.1, 1) == 18
