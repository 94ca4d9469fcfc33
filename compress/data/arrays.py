"""Data given in memory through the Python API: numpy arrays or torch Datasets, checked and
normalised exactly as a `.npz` file is (same checks, same one-line errors)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from compress.data.npz import raw_from_arrays


class ArraysData(BaseModel):
    """How checkpoints and ONNX metadata describe in-memory data: its hash, not its bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["arrays"] = "arrays"
    sha256: str = Field(description="hash of every array given")
    seed: int = 0
    val_fraction: float = 0.1


def from_arrays(x_train, y_train, x_test, y_test, x_val=None, y_val=None, *,
                class_labels: list[str] | None = None, val_fraction: float = 0.1,
                seed: int = 0):
    """Data for the Python API from arrays: inputs (N, F), (N, C, L) or (N, C, H, W), integer
    labels 0..K-1.

    Inputs are normalised per channel with the training split's mean and std (the statistics
    are recorded in every checkpoint and ONNX file). Without `x_val`, a stratified, seeded
    `val_fraction` of the training split is held out for validation.

    Args:
        x_train, y_train, x_test, y_test: the training and held-out test splits.
        x_val, y_val: an explicit validation split (both or neither).
        class_labels: names of the classes, in label order.
        val_fraction: share of the training split held out when no validation split is given.
        seed: seed of that split.

    Returns:
        compress.data.Dataset: what every API function takes as `data`.

    Raises:
        compress.errors.DataError: an array is malformed (one line naming which and why).

    Example:
        >>> from sklearn.datasets import load_digits
        >>> import compress
        >>> d = load_digits()
        >>> x, y = d.images[:, None].astype("float32"), d.target
        >>> data = compress.data.from_arrays(x[:1500], y[:1500], x[1500:], y[1500:])
        >>> data.input_shape, data.num_classes
        ([1, 8, 8], 10)
    """
    from compress.artifacts import sha256_json
    from compress.data import normalise_raw

    arrays: dict[str, Any] = {"x_train": np.asarray(x_train), "y_train": np.asarray(y_train),
                              "x_test": np.asarray(x_test), "y_test": np.asarray(y_test)}
    if x_val is not None or y_val is not None:
        arrays.update({"x_val": np.asarray(x_val), "y_val": np.asarray(y_val)})
    if class_labels is not None:
        arrays["class_labels"] = np.asarray(class_labels)
    raw = raw_from_arrays(arrays, "compress.data.from_arrays", val_fraction, seed)
    digest = sha256_json({k: _digest(v) for k, v in sorted(arrays.items())})
    spec = ArraysData(sha256=digest, seed=seed, val_fraction=val_fraction)
    return normalise_raw("arrays", raw, spec)


def from_torch(train, test, val=None, *, class_labels: list[str] | None = None,
               val_fraction: float = 0.1, seed: int = 0):
    """Data for the Python API from `torch.utils.data.Dataset`s of (input tensor, label) pairs.

    Every item is read once into memory; then as `from_arrays` (same Args, Returns, Raises).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> import compress
        >>> ds = TensorDataset(torch.randn(40, 1, 8, 8), torch.arange(40) % 4)
        >>> compress.data.from_torch(ds, ds).num_classes
        4
    """
    def stack(ds):
        xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
        return (np.stack([np.asarray(x, dtype=np.float32) for x in xs]),
                np.asarray([int(y) for y in ys]))

    (xt, yt), (xs, ys) = stack(train), stack(test)
    xv, yv = stack(val) if val is not None else (None, None)
    return from_arrays(xt, yt, xs, ys, xv, yv, class_labels=class_labels,
                       val_fraction=val_fraction, seed=seed)


def _digest(a: np.ndarray) -> str:
    import hashlib

    a = np.ascontiguousarray(a)
    return hashlib.sha256(str((a.dtype.str, a.shape)).encode() + a.tobytes()).hexdigest()
