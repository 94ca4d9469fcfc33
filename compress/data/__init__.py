"""Data sources with fixed, seeded train/val/test splits and train-only normalisation.

Each source module defines a small config class (discriminated by `source`) and a loader that
returns raw arrays; this module splits, checks and normalises them into a `Dataset`.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from compress.artifacts import canonical_json, sha256_file
from compress.data.digits import DigitsData, load_digits_raw
from compress.data.mnist1d import Mnist1dData, load_mnist1d_raw
from compress.data.npz import NpzData, load_npz_raw
from compress.data.pydoc import PydocData, TextCorpus, load_pydoc_corpus
from compress.data.splits import RawSplits
from compress.errors import DataError

TEXT_SOURCES = frozenset({"pydoc"})  # sentences, no arrays: read by the text stages only
DataConfig = Annotated[DigitsData | Mnist1dData | NpzData | PydocData,
                       Field(discriminator="source")]

_LOADERS = {"digits": load_digits_raw, "mnist1d": load_mnist1d_raw, "npz": load_npz_raw}


@dataclass(frozen=True)
class Dataset:
    """Normalised float32 inputs shaped (N, C, ...) and int64 labels for the three splits."""

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
    spec: Any = None  # the config it was loaded from (in-memory data: compress.data.ArraysData)

    @property
    def input_shape(self) -> list[int]:
        """Shape of one sample without the batch axis, e.g. [1, 8, 8]."""
        return list(self.x_train.shape[1:])

    @property
    def layout(self) -> str:
        return {3: "NCL", 4: "NCHW"}.get(self.x_train.ndim, "N" + "F" * (self.x_train.ndim - 1))

    def preprocessing(self) -> dict:
        """How raw inputs become model inputs: (x - mean[c]) / std[c] per channel."""
        return {"layout": self.layout, "mean": self.mean, "std": self.std, "dtype": "float32"}


def load_dataset(cfg) -> Dataset | TextCorpus:
    """Load, split, check and normalise the data a config describes (cached per process)."""
    key = canonical_json(cfg.model_dump(mode="json"))
    path = getattr(cfg, "path", None)
    if path is not None and Path(path).is_file():
        key += sha256_file(path)  # same path, new bytes: not the same data
    return _load_cached(key, cfg)


@functools.lru_cache(maxsize=4)
def _load_cached(_key: str, cfg) -> Dataset | TextCorpus:
    if cfg.source == "pydoc":
        return load_pydoc_corpus(cfg)  # sentences: no arrays to normalise
    raw: RawSplits = _LOADERS[cfg.source](cfg)
    return normalise_raw(cfg.source, raw, cfg)


def normalise_raw(name: str, raw: RawSplits, spec: Any) -> Dataset:
    """Checked raw splits -> a normalised Dataset that remembers the spec it came from."""
    return dataclasses.replace(_normalise(name, raw), spec=spec)


def _normalise(name: str, raw: RawSplits) -> Dataset:
    # Statistics come from the training split only, so val/test stay unseen.
    axes = tuple(i for i in range(raw.x_train.ndim) if i != 1)
    mean = raw.x_train.mean(axis=axes, dtype=np.float64)
    std = raw.x_train.std(axis=axes, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)
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
        num_classes=num_classes, class_labels=labels,
    )


def raw_test_split(cfg) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test split before normalisation (x in model layout, y): what a consumer
    of an exported model feeds it, raw, and checks its predictions against."""
    if cfg.source not in _LOADERS:
        raise DataError(f"data source '{cfg.source}' is text: it has no raw input arrays")
    raw: RawSplits = _LOADERS[cfg.source](cfg)
    return raw.x_test, raw.y_test.astype(np.int64)


def normalise_with(x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """Apply stored per-channel statistics to raw inputs shaped (N, C, ...)."""
    if x.shape[1] != len(mean):
        raise DataError(f"inputs have {x.shape[1]} channels but the model expects {len(mean)}")
    shape = [1, -1] + [1] * (x.ndim - 2)
    return ((x - np.reshape(mean, shape)) / np.reshape(std, shape)).astype(np.float32)


from compress.data.arrays import ArraysData, from_arrays, from_torch  # noqa: E402  (API)

__all__ = ["ArraysData", "from_arrays", "from_torch", "TEXT_SOURCES", "DataConfig", "Dataset",
           "DigitsData", "Mnist1dData", "NpzData", "PydocData", "TextCorpus", "load_dataset"]
