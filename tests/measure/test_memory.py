"""Memory: a fresh process loads the model and runs it; its peak RSS above the pre-load RSS."""

from __future__ import annotations

import numpy as np

from compress.measure.memory import measure_memory


def test_ort_model_in_a_fresh_process_has_a_positive_peak_delta(tiny_onnx):
    # setup
    x = np.zeros((8, 1, 8, 8), dtype=np.float32)
    # execute
    mem = measure_memory(tiny_onnx, "ort", [x[:1], x], threads=1, runs=3)
    # assert
    assert mem["peak_delta_bytes"] > 0
    assert mem["peak_rss_bytes"] == mem["rss_before_load_bytes"] + mem["peak_delta_bytes"]
    assert mem["runtime_import_bytes"] > 0  # onnxruntime's own RSS, kept out of the delta
    assert mem["batch_sizes"] == [1, 8] and mem["settings"]["enable_cpu_mem_arena"] is True
    assert "VmHWM" in mem["peak_method"] or "ru_maxrss" in mem["peak_method"]


def test_arena_setting_is_recorded(tiny_onnx):
    x = np.zeros((2, 1, 8, 8), dtype=np.float32)
    mem = measure_memory(tiny_onnx, "ort", [x], threads=1, runs=1, mem_arena=False)
    assert mem["settings"]["enable_cpu_mem_arena"] is False and mem["peak_delta_bytes"] > 0
