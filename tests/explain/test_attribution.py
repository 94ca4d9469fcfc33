"""The attribution engines on the tiny digits model: occlusion in ORT (fp32 and int8), fidelity
of a model with itself, the randomized reference and the window check."""

from __future__ import annotations

import numpy as np
import pytest

from compress.errors import ConfigError
from compress.explain.fidelity import Attribution, fidelity, spearman_rows, topk_overlap
from compress.explain.occlusion import Windows, occlude


@pytest.fixture(scope="module")
def sample():
    from compress.data import load_dataset
    from compress.data.digits import DigitsData

    data = load_dataset(DigitsData(source="digits", seed=0))
    return np.ascontiguousarray(data.x_test[:40])


def _explain(session, x, windows, target=None):
    occ = occlude(session, x, windows)
    target = occ.logits.argmax(1) if target is None else target
    return Attribution(occ.maps(target, windows), occ.top_window(target)), target


def test_model_against_itself_has_fidelity_one(tiny_onnx, sample):
    # setup
    from compress.measure.ort import make_session

    windows = Windows.for_input([1, 8, 8], None, None, "test")
    session = make_session(tiny_onnx, threads=1)
    # execute
    a, target = _explain(session, sample, windows)
    b, _ = _explain(make_session(tiny_onnx, threads=1), sample, windows, target)
    fid = fidelity(a, b, windows.overlap, resamples=200, seed=0)
    # assert
    for metric in ("spearman", "topk_overlap", "top_region_agreement"):
        assert fid[metric]["mean"] == pytest.approx(1.0)
        assert fid[metric]["ci_low"] == pytest.approx(1.0)


def test_randomized_teacher_falls_below_the_check(tiny_checkpoint, tiny_onnx, sample, tmp_path):
    # setup
    import torch

    from compress import artifacts
    from compress.explain.randomize import cascade, export_randomized
    from compress.measure.ort import make_session
    from compress.models.checkpoint import model_from_checkpoint

    ckpt = artifacts.load_checkpoint(tiny_checkpoint)
    steps = cascade(ckpt, model_from_checkpoint(ckpt, tiny_checkpoint), seed=0)
    windows = Windows.for_input([1, 8, 8], None, None, "test")
    # execute
    paths = export_randomized(steps, torch.from_numpy(sample[:2]), tmp_path)
    teacher, target = _explain(make_session(tiny_onnx, threads=1), sample, windows)
    rand, _ = _explain(make_session(paths[-1], threads=1), sample, windows, target)
    fid = fidelity(teacher, rand, windows.overlap, resamples=200, seed=0)
    # assert: every layer re-initialized, the maps no longer follow the teacher's
    assert steps[-1].groups == ["head", "features"]
    assert fid["spearman"]["ci_high"] < 0.5


def test_int8_model_is_explained_through_ort(tiny_onnx, sample, tmp_path):
    # setup
    from onnxruntime.quantization import quantize_dynamic

    from compress.measure.ort import make_session
    from compress.onnx.inspection import int8_weight_fraction

    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(str(tiny_onnx), str(int8))
    windows = Windows.for_input([1, 8, 8], None, None, "test")
    # execute
    fp32, target = _explain(make_session(tiny_onnx, threads=1), sample, windows)
    q, _ = _explain(make_session(int8, threads=1), sample, windows, target)
    # assert: int8 weights, maps that differ from fp32 yet keep its evidence
    assert int8_weight_fraction(int8) > 0.5
    assert not np.array_equal(q.maps, fp32.maps)
    assert spearman_rows(fp32.maps, q.maps).mean() > 0.8


def test_window_larger_than_input_is_refused():
    with pytest.raises(ConfigError, match="field 'window'.*larger than the input"):
        Windows.for_input([1, 40], 41, None, "stage 'explain'")


def test_windows_cover_every_feature_and_tables_ablate_features():
    # execute
    image = Windows.for_input([1, 8, 8], 3, 2, "x")
    table = Windows.for_input([5], None, None, "x")
    # assert
    assert image.masks.any(axis=0).all()
    assert table.window == (1,) and len(table.starts) == 5 and not table.channel_axis


def test_metrics_on_known_maps():
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert spearman_rows(a, -a)[0] == pytest.approx(-1.0)
    assert spearman_rows(a, np.zeros_like(a))[0] == 0.0  # a constant map correlates 0
    assert topk_overlap(a, a[:, ::-1], 2)[0] == 0.0
