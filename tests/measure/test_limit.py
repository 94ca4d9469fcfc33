"""The limit figure: floor + MACs / peak, with the floor and the peaks from an injected timer
(no real timing in a pass/fail test)."""

from __future__ import annotations

import pytest

from compress.measure.limit import GEMM_MACS, measure_limit, percent_of_limit
from compress.onnx.macs import count_macs
from tests.onnx.graphs import small_cnn

FLOOR_MS = 0.01


def _fake_timer(calls: dict) -> dict[str, float]:
    """p50 per graph: the floor, then GEMMs at 50 (fp32), 200 and 150 GMAC/s (u8s8)."""
    assert set(calls) == {"floor", "fp32", "MatMulInteger", "QLinearMatMul"}
    for call in calls.values():  # the graphs really run in ORT
        call()
    gemm = {"fp32": 50e9, "MatMulInteger": 200e9, "QLinearMatMul": 150e9}
    return {"floor": FLOOR_MS} | {n: FLOOR_MS + GEMM_MACS / r * 1e3 for n, r in gemm.items()}


def test_the_limit_of_a_hand_made_graph_with_known_macs(tmp_path):
    # setup: 78,496 MACs per sample, all fp32
    macs = count_macs(small_cnn(tmp_path / "m.onnx"), [1, 8, 8])
    # execute
    limit = measure_limit(threads=1, timer=_fake_timer)
    at_64 = limit.limit_ms(macs, 64)
    # assert: peaks from the timer, the faster u8s8 kernel kept
    assert limit.floor_ms == FLOOR_MS
    assert limit.fp32_gmacs == pytest.approx(50, rel=1e-4)
    assert (limit.int8_kernel, limit.int8_gmacs) == ("MatMulInteger", pytest.approx(200, rel=1e-4))
    assert at_64 == pytest.approx(FLOOR_MS + 64 * 78_496 / 50e9 * 1e3, rel=1e-4)  # 0.1105 ms
    # a model at twice its limit runs at 50 % of it; int8 MACs divide by the int8 peak
    assert percent_of_limit(at_64, 2 * at_64) == 50.0
    assert limit.limit_ms({"int8": 78_496}, 64) == pytest.approx(
        FLOOR_MS + 64 * 78_496 / 200e9 * 1e3, rel=1e-4)
    assert limit.record()["gemm"].startswith("[64x256] x [256x256]")
