"""The calibration reader speaks both protocols ORT's tools use: get_next() until None, and
iteration (onnxruntime.quantization.qdq_loss_debug.collect_activations iterates it)."""

from __future__ import annotations

import numpy as np

from compress.onnx.quantization import _Reader


def test_the_reader_iterates_and_gets_next_over_the_same_batches():
    # setup
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    # execute
    iterated = [b["input"] for b in _Reader("input", x, 2)]
    reader, fetched = _Reader("input", x, 2), []
    while (feed := reader.get_next()) is not None:
        fetched.append(feed["input"])
    # assert
    assert len(iterated) == len(fetched) == 3
    assert all(np.array_equal(a, b) for a, b in zip(iterated, fetched, strict=True))
    assert np.array_equal(np.concatenate(iterated), x)
