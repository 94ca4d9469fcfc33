"""Data sources with fixed, seeded train/val/test splits and train-only normalisation.

Each source module defines a small config class (discriminated by `source`) and a loader that
returns raw arrays; this module splits, checks and normalises them into a `Dataset`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from compress.artifacts import canonical_json, sha256_file
from compress.data.csv import CsvData, load_csv_raw
from compress.data.digits import DigitsData, load_digits_raw
from compress.data.image_folder import ImageFolderData, decode_cache, load_image_folder_raw
from compress.data.mnist1d import Mnist1dData, load_mnist1d_raw
from compress.data.mnist5k import Mnist5kData, load_mnist5k_raw
from compress.data.npz import NpzData, load_npz_raw
from compress.data.pydoc import PydocData, TextCorpus, load_pydoc_corpus
from compress.data.splits import RawSplits, keep_labels
from compress.data.tables import SklearnData, load_sklearn_raw
from compress.errors import DataError

TEXT_SOURCES = frozenset({"pydoc"})  # sentences, no arrays: read by the text stages only
DataConfig = Annotated[
    DigitsData | Mnist1dData | NpzData | SklearnData | CsvData | ImageFolderData | Mnist5kData
    | PydocData,
    Field(discriminator="source")]

_LOADERS = {"digits": load_digits_raw, "mnist1d": load_mnist1d_raw, "npz": load_npz_raw,
            "sklearn": load_sklearn_raw, "csv": load_csv_raw,
            "image_folder": load_image_folder_raw, "mnist5k": load_mnist5k_raw}
# ImageNet's per-channel statistics of pixels / 255 (torchvision's pretrained weights expect
# them); one grey channel gets their average, the grey repeated into RGB would see about that.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# How samples are laid out, by the number of axes of x (batch first). NF: a table, one mean
# and one std per feature; the others: one per channel (axis 1), shared along L or H, W.
LAYOUTS = {2: "NF", 3: "NCL", 4: "NCHW"}


@dataclass(frozen=True)
class Dataset:
    """Normalised float32 inputs shaped (N, F) or (N, C, ...) and int64 labels for the three
    splits; `mean`/`std` hold one value per feature (NF) or per channel (NCL, NCHW)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: list[float]
    std: list[float]
    num_classes: int
    class_labels: list[str] = field(default_factory=list)
    source_steps: dict = field(default_factory=dict)  # file -> raw sample, e.g. {"image": ...}
    spec: Any = None  # the config it was loaded from (in-memory data: compress.data.ArraysData)
    # training inputs without labels (labels_per_class), normalised like x_train; None = none
    x_unlabeled: np.ndarray | None = None

    @property
    def input_shape(self) -> list[int]:
        """Shape of one sample without the batch axis, e.g. [1, 8, 8]."""
        return list(self.x_train.shape[1:])

    @property
    def layout(self) -> str:
        return LAYOUTS[self.x_train.ndim]

    def preprocessing(self) -> dict:
        """How raw inputs become model inputs: (x - mean[i]) / std[i] along axis 1 (a feature
        for NF, a channel otherwise); for files (images, CSV rows) also how a file becomes the
        raw input."""
        return {"layout": self.layout, "mean": self.mean, "std": self.std, "dtype": "float32",
                **self.source_steps}


def load_dataset(cfg) -> Dataset | TextCorpus:
    """Load, split, check and normalise the data a config describes (cached per process)."""
    key = canonical_json(cfg.model_dump(mode="json")) + (content_sha256(cfg) or "")
    return _load_cached(key, cfg)


def content_sha256(cfg) -> str | None:
    """Hash of the bytes a user-file source reads (same path, new bytes: not the same data);
    None for the packaged data sets and for a path that is not there (loading says why)."""
    if cfg.source == "image_folder":
        from compress.data.image_folder import content_key

        return content_key(cfg) if Path(cfg.path).is_dir() else None
    paths = [p for p in (getattr(cfg, "path", None), getattr(cfg, "test_path", None)) if p]
    hashes = [sha256_file(p) for p in paths if Path(p).is_file()]
    return "+".join(hashes) or None  # a CSV's fixed test file counts too


@functools.lru_cache(maxsize=4)
def _load_cached(_key: str, cfg) -> Dataset | TextCorpus:
    if cfg.source == "pydoc":
        return load_pydoc_corpus(cfg)  # sentences: no arrays to normalise
    raw: RawSplits = _LOADERS[cfg.source](cfg)
    raw = keep_labels(raw, getattr(cfg, "labels_per_class", None), cfg.seed,
                      f"data source '{cfg.source}'")
    return normalise_raw(cfg.source, raw, cfg)


def normalise_raw(name: str, raw: RawSplits, spec: Any) -> Dataset:
    """Checked raw splits -> a normalised Dataset that remembers the spec it came from."""
    fixed = getattr(spec, "normalize", "train") == "imagenet"
    return dataclasses.replace(_normalise(name, raw, fixed), spec=spec)


def _normalise(name: str, raw: RawSplits, imagenet: bool = False) -> Dataset:
    # Statistics come from the training split only, so val/test stay unseen. Axis 1 is the
    # feature (NF) or channel axis: a table's features, on scales 1,000x apart, each get their
    # own statistics instead of one shared mean that squashes the small ones to constants.
    axes = tuple(i for i in range(raw.x_train.ndim) if i != 1)
    mean = raw.x_train.mean(axis=axes, dtype=np.float64)
    std = raw.x_train.std(axis=axes, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)
    if imagenet:
        channels = raw.x_train.shape[1]
        mean = np.asarray(IMAGENET_MEAN if channels == 3 else [np.mean(IMAGENET_MEAN)])
        std = np.asarray(IMAGENET_STD if channels == 3 else [np.mean(IMAGENET_STD)])
    shape = [1, -1] + [1] * (raw.x_train.ndim - 2)
    m, s = mean.reshape(shape), std.reshape(shape)

    def norm(x: np.ndarray) -> np.ndarray:
        return ((x - m) / s).astype(np.float32)

    num_classes = int(raw.num_classes)
    labels = raw.class_labels or [str(i) for i in range(num_classes)]
    return Dataset(
        name=name,
        x_train=norm(raw.x_train), y_train=raw.y_train.astype(np.int64),
        x_val=norm(raw.x_val), y_val=raw.y_val.astype(np.int64),
        x_test=norm(raw.x_test), y_test=raw.y_test.astype(np.int64),
        mean=[float(v) for v in mean], std=[float(v) for v in std],
        num_classes=num_classes, class_labels=labels, source_steps=raw.source_steps,
        x_unlabeled=None if raw.x_unlabeled is None else norm(raw.x_unlabeled),
    )


def describe_data(data: Dataset | TextCorpus) -> str:
    """'digits, 1149 train / 128 val / 360 test samples of shape [1, 8, 8], 10 classes'."""
    if isinstance(data, TextCorpus):
        return (f"{data.name}, {len(data.train)} train / {len(data.val)} val / "
                f"{len(data.test)} test sentences")
    unlabeled = ("" if data.x_unlabeled is None
                 else f" (+ {len(data.x_unlabeled)} unlabeled)")
    return (f"{data.name}, {len(data.x_train)} train{unlabeled} / {len(data.x_val)} val / "
            f"{len(data.x_test)} test samples of shape {data.input_shape}, "
            f"{data.num_classes} classes")


def raw_test_split(cfg) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test split before normalisation (x in model layout, y): what a consumer
    of an exported model feeds it, raw, and checks its predictions against."""
    if cfg.source not in _LOADERS:
        raise DataError(f"data source '{cfg.source}' is text: it has no raw input arrays")
    raw: RawSplits = _LOADERS[cfg.source](cfg)
    return raw.x_test, raw.y_test.astype(np.int64)


def portable_spec(spec: dict, base_dir: str | Path | None = None) -> dict:
    """The data spec as shipped files carry it (ONNX metadata, manifest.json): a user file's path
    relative to `base_dir` (the pipeline file's folder), or only its name without one, plus its
    sha256; never the build machine's absolute path. Other sources are returned unchanged."""
    if spec.get("source") != "npz" or not spec.get("path"):
        return dict(spec)
    path = Path(spec["path"])
    rel = Path(os.path.relpath(path, base_dir) if base_dir is not None else path.name)
    out = {**spec, "path": rel.as_posix()}
    if path.is_file():
        out["sha256"] = sha256_file(path)
    return out


def locate_spec(spec: dict, base_dir: str | Path | None) -> dict:
    """Undo `portable_spec` for reading: a relative npz path resolved against `base_dir`."""
    path = spec.get("path")
    if spec.get("source") != "npz" or not path or base_dir is None or Path(path).is_absolute():
        return dict(spec)
    return {**spec, "path": str(Path(base_dir) / path)}


def normalise_with(x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """Apply stored per-feature (N, F) or per-channel (N, C, ...) statistics to raw inputs."""
    if x.shape[1] != len(mean):
        what = "features" if x.ndim == 2 else "channels"
        raise DataError(f"inputs have {x.shape[1]} {what} but the model expects {len(mean)}")
    shape = [1, -1] + [1] * (x.ndim - 2)
    return ((x - np.reshape(mean, shape)) / np.reshape(std, shape)).astype(np.float32)


from compress.data.arrays import ArraysData, from_arrays, from_torch  # noqa: E402  (API)

__all__ = ["ArraysData", "from_arrays", "from_torch", "TEXT_SOURCES", "CsvData", "DataConfig",
           "Dataset", "DigitsData", "ImageFolderData", "Mnist1dData", "Mnist5kData", "NpzData",
           "PydocData",
           "SklearnData", "TextCorpus", "content_sha256", "decode_cache", "describe_data",
           "load_dataset"]
