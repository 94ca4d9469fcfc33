"""The image_folder source: layouts, labels, resizing, the decoded-image cache, and an image
pipeline whose model examples/classify.py feeds from PNG files. (Bad folders: one row each in
tests/test_bad_inputs.py.)"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compress.data import ImageFolderData, decode_cache, load_dataset
from compress.data import image_folder as image_folder_module
from compress.data.image_folder import decode_file, load_image_folder_raw
from compress.data.make_digit_images import write_digit_images
from compress.errors import DataError
from tests.conftest import REPO


def _write(path: Path, size=(8, 8), seed: int = 0, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(path, fmt)


def _folder(root: Path, classes=("b", "a", "c"), per_class: int = 5, size=(8, 8)) -> Path:
    for k, name in enumerate(classes):
        for i in range(per_class):
            _write(root / name / f"{i}.png", size, seed=10 * k + i)
    return root


def test_class_folders_give_sorted_labels_scaled_pixels_and_the_app_steps(tmp_path):
    # setup
    folder = _folder(tmp_path / "imgs")
    # execute
    raw = load_image_folder_raw(ImageFolderData(path=str(folder)))
    grey = load_image_folder_raw(ImageFolderData(path=str(folder), channels=1))
    # assert
    assert raw.class_labels == ["a", "b", "c"]  # sorted folder names, not listing order
    assert raw.x_train.shape[1:] == (3, 8, 8) and grey.x_train.shape[1:] == (1, 8, 8)
    assert len(raw.y_train) + len(raw.y_val) + len(raw.y_test) == 15
    assert raw.x_train.dtype == np.float32 and 0 <= raw.x_train.min() <= raw.x_train.max() <= 1
    image = raw.source_steps["image"]
    assert image["size"] == [8, 8] and image["mode"] == "RGB" and image["scale"] == 1 / 255
    assert "BILINEAR" in image["resize"]


def test_a_sample_is_its_file_decoded_over_255(tmp_path):
    # setup: one class's file, found in whichever split it landed
    folder = _folder(tmp_path / "imgs")
    raw = load_image_folder_raw(ImageFolderData(path=str(folder)))
    want = decode_file(folder / "a" / "0.png", (8, 8), 3).astype(np.float32) / 255
    # execute
    everything = np.concatenate([raw.x_train, raw.x_val, raw.x_test])
    # assert: pixel-exact, in RGB order
    rgb = np.asarray(Image.open(folder / "a" / "0.png").convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(want * 255, rgb.astype(np.float32))
    assert any(np.array_equal(x, want) for x in everything)


def test_fixed_splits_are_kept_and_labels_come_from_train(tmp_path):
    # setup: train/ and test/ (no val/: split off train)
    _folder(tmp_path / "imgs" / "train", ("dog", "cat"), per_class=6)
    _folder(tmp_path / "imgs" / "test", ("cat", "dog"), per_class=2)
    # execute
    raw = load_image_folder_raw(ImageFolderData(path=str(tmp_path / "imgs")))
    # assert
    assert raw.class_labels == ["cat", "dog"]
    assert len(raw.y_test) == 4 and sorted(raw.y_test) == [0, 0, 1, 1]
    assert len(raw.y_train) + len(raw.y_val) == 12 and len(raw.y_val) >= 1


def test_size_resizes_mixed_sizes_and_jpeg_is_read(tmp_path):
    # setup
    folder = _folder(tmp_path / "imgs", ("a", "b"), per_class=3)
    _write(folder / "a" / "big.png", (20, 12))
    _write(folder / "b" / "photo.jpg", (9, 9), fmt="JPEG")
    # execute
    raw = load_image_folder_raw(ImageFolderData(path=str(folder), size=(6, 7)))
    # assert
    assert raw.x_train.shape[1:] == (3, 6, 7)
    with pytest.raises(DataError, match="set `size: \\[H, W\\]`"):
        load_image_folder_raw(ImageFolderData(path=str(folder)))


def test_a_rerun_decodes_nothing_and_new_bytes_decode_again(tmp_path, monkeypatch):
    # setup
    folder = _folder(tmp_path / "imgs")
    cfg = ImageFolderData(path=str(folder))
    cache = tmp_path / "run" / ".cache"
    with decode_cache(cache):
        first = load_image_folder_raw(cfg)
    entries = list(cache.glob("images-*.npy"))

    def refuse(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(image_folder_module, "decode_file", refuse)
    # execute: the same files, from the cache
    with decode_cache(cache):
        second = load_image_folder_raw(cfg)
    # assert
    assert len(entries) == 1
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    # execute: one file's bytes change (same name, same size): the key changes, so it decodes
    _write(folder / "a" / "0.png", seed=99)
    with decode_cache(cache), pytest.raises(AssertionError, match="decoded again"):
        load_image_folder_raw(cfg)
    monkeypatch.undo()
    with decode_cache(cache):
        load_image_folder_raw(cfg)
    # assert: the stale entry is gone, one entry remains, no temporary file is left
    assert [p.name for p in cache.iterdir()] != [entries[0].name]
    assert len(list(cache.iterdir())) == 1


def test_decoding_in_chunks_gives_the_same_memory_mapped_array(tmp_path, monkeypatch):
    # setup
    folder = _folder(tmp_path / "imgs")
    cfg = ImageFolderData(path=str(folder))
    index = image_folder_module.scan(cfg)
    whole = image_folder_module.decoded_images(cfg, index)
    monkeypatch.setattr(image_folder_module, "CHUNK", 2)
    # execute
    with decode_cache(tmp_path / "cache"):
        chunked = image_folder_module.decoded_images(cfg, index)
    # assert
    assert isinstance(chunked, np.memmap) and chunked.dtype == np.uint8
    np.testing.assert_array_equal(whole, chunked)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_image_is_named(tmp_path):
    # setup
    folder = _folder(tmp_path / "imgs")
    (folder / "b" / "1.png").chmod(0)
    # execute / assert
    with pytest.raises(DataError, match="1.png: cannot read it \\(permission denied\\)"):
        load_image_folder_raw(ImageFolderData(path=str(folder)))


def _classify():
    spec = importlib.util.spec_from_file_location("classify", REPO / "examples" / "classify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_image_pipeline_ships_a_model_that_classifies_png_files(tmp_path, capsys):
    # setup: real digits as 16x16 RGB PNG files, 12 per class
    from compress.config import parse_pipeline
    from compress.measure.ort import read_metadata
    from compress.runner import run_pipeline

    folder = tmp_path / "digits"
    write_digit_images(folder, size=16, limit=12)
    cfg = parse_pipeline({
        "name": "img", "data": {"source": "image_folder", "path": str(folder)},
        "stages": [{"id": "teacher", "stage": "train", "model": {"arch": "mlp", "hidden": [32]},
                    "epochs": 3, "batch_size": 32, "lr": 0.01, "device": "cpu"},
                   {"id": "fp32", "stage": "export", "input": "teacher"}]}, "img.yaml")
    # execute
    root = run_pipeline(cfg, tmp_path / "out", progress=False, log=lambda m: None).root
    model = root / "fp32" / "model.onnx"
    classify = _classify()
    files = sorted(folder.glob("3/*.png"))[:3]
    code_images = classify.main([str(model), "--image", *map(str, files)])
    printed = capsys.readouterr().out
    code_npz = classify.main([str(model)])
    # assert: the metadata tells the app everything; its input is the training input exactly
    pre = read_metadata(model)["compress.preprocessing"]
    assert pre["image"]["size"] == [16, 16] and pre["image"]["channel_order"] == "RGB"
    assert len(pre["mean"]) == 3
    assert code_images == 0 and code_npz == 0
    assert [line.split(":")[0] for line in printed.splitlines()] == list(map(str, files))
    for f in files:
        want = decode_file(f, (16, 16), 3).astype(np.float32)[None] / 255
        np.testing.assert_array_equal(classify.image_input(f, pre["image"]), want)
    assert len(list((root / ".cache").glob("images-*.npy"))) == 1  # decoded under the run
    assert load_dataset(cfg.data).class_labels == [str(d) for d in range(10)]


def test_every_bad_image_file_is_named_in_one_message(tmp_path):
    # setup: two files that are no image, one GIF, two truncated PNGs
    folder = _folder(tmp_path / "imgs")
    for name in ("a/0.png", "c/3.png"):
        (folder / name).write_bytes(b"not an image")
    Image.new("RGB", (8, 8)).save(folder / "b" / "9.gif", "GIF")
    (folder / "b" / "9.gif").rename(folder / "b" / "9.png")
    # execute
    with pytest.raises(DataError) as header_err:
        load_image_folder_raw(ImageFolderData(path=str(folder)))
    for name in ("a/0.png", "c/3.png", "b/9.png"):
        _write(folder / name)
    for name in ("a/1.png", "c/2.png"):
        (folder / name).write_bytes((folder / name).read_bytes()[:-30])
    with pytest.raises(DataError) as decode_err:
        load_image_folder_raw(ImageFolderData(path=str(folder)))
    # assert: all of them, in one run each
    msg = str(header_err.value)
    assert msg.startswith("3 bad image files: ") and "a/0.png: not an image" in msg
    assert "c/3.png: not an image" in msg and "b/9.png: a GIF image" in msg
    msg = str(decode_err.value)
    assert msg.startswith("2 image files do not decode: ") and "a/1.png: cannot decode" in msg
    assert "c/2.png: cannot decode" in msg and msg.endswith("replace or remove them")
