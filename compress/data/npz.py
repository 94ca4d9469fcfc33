"""User data from a `.npz` file: x_train, y_train, x_test, y_test and optionally x_val, y_val.

Inputs are (N, F) tables (layout NF: each feature normalised on its own), (N, C, L) sequences
or (N, C, H, W) images; labels are integers 0..K-1. An optional `class_labels` array names the
classes. Every array is checked before use.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from compress.artifacts import sha256_file
from compress.data.splits import LabelledSplitFields, RawSplits, SplitFields, stratified_split
from compress.errors import DataError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


class NpzData(LabelledSplitFields):
    source: Literal["npz"] = "npz"
    path: str = Field(description="the .npz file; relative paths start at the pipeline file")
    sha256: str | None = Field(
        None, description="the file's sha256 when known (shipped models record it instead of "
        "an absolute path): a file with other bytes is refused")


def load_npz_raw(cfg: NpzData) -> RawSplits:
    path = Path(cfg.path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found; check `data.path`")
    if cfg.sha256 is not None and sha256_file(path) != cfg.sha256:
        raise DataError(f"{path}: the file's sha256 differs from the one recorded "
                        f"({cfg.sha256[:16]}...): it is not the data the model was made with; "
                        "pass the right file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}); save it with numpy.savez") from e
    return raw_from_arrays(arrays, path, cfg.val_fraction, cfg.seed)


def raw_from_arrays(arrays: dict, path, val_fraction: float, seed: int) -> RawSplits:
    """Checked splits from x_train, y_train, x_test, y_test (x_val, y_val, class_labels
    optional); `path` names where they came from in errors (a file, or the Python API)."""
    missing = [k for k in REQUIRED if k not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise DataError(
            f"{path}: missing array(s) {', '.join(missing)}; the file needs "
            f"{', '.join(REQUIRED)} (and x_val with y_val, or neither)"
        )
    splits = ["train", "test"] + (["val"] if "x_val" in arrays else [])
    for split in splits:
        _check_pair(path, split, arrays[f"x_{split}"], arrays[f"y_{split}"])

    odd = next((s for s in splits[1:] if arrays[f"x_{s}"].shape[1:] != arrays["x_train"].shape[1:]),
               None)
    if odd is not None:
        raise DataError(f"{path}: {_sample_shapes(odd, arrays)}; {_expected(odd, arrays)}")
    train_max = int(arrays["y_train"].max())
    seen = len(np.unique(arrays["y_train"]))
    if seen < train_max + 1:
        # A stray large label would otherwise size the model's output layer.
        raise DataError(
            f"{path}: y_train has labels up to {train_max} but only {seen} distinct classes; "
            "labels must be 0..K-1 with every class in the training split (remap them with "
            "np.unique(y, return_inverse=True))"
        )
    for split in splits[1:]:
        if int(arrays[f"y_{split}"].max()) > train_max:
            raise DataError(
                f"{path}: y_{split} has label {int(arrays[f'y_{split}'].max())} but y_train only "
                f"goes up to {train_max}; every class must appear in the training split"
            )
    y_all = np.concatenate([arrays[f"y_{s}"] for s in splits])
    num_classes = int(y_all.max()) + 1
    labels = [str(v) for v in arrays["class_labels"]] if "class_labels" in arrays else []
    if labels and len(labels) < num_classes:
        raise DataError(
            f"{path}: class_labels names {len(labels)} classes but labels go up to "
            f"{num_classes - 1}"
        )
    num_classes = max(num_classes, len(labels))

    # (N, F) stays a table: axis 1 holds the features, so each gets its own mean and std.
    x = {s: arrays[f"x_{s}"].astype(np.float32) for s in splits}
    y = {s: arrays[f"y_{s}"].astype(np.int64) for s in splits}
    if "val" in x:
        x_train, y_train, x_val, y_val = x["train"], y["train"], x["val"], y["val"]
    else:
        x_train, y_train, x_val, y_val = stratified_split(
            x["train"], y["train"], val_fraction, seed
        )
    return RawSplits(
        x_train, y_train, x_val, y_val, x["test"], y["test"], num_classes, class_labels=labels
    )


def _sample_shapes(split: str, arrays: dict) -> str:
    """'x_test has 12 features, x_train 13' (tables) or 'x_val has samples of shape (1, 40),
    x_train (1, 41)': the two arrays named, each with its own shape."""
    odd, ref = arrays[f"x_{split}"].shape[1:], arrays["x_train"].shape[1:]
    if len(odd) == len(ref) == 1:
        return f"x_{split} has {odd[0]} features, x_train {ref[0]}"
    return f"x_{split} has samples of shape {tuple(odd)}, x_train {tuple(ref)}"


def _expected(split: str, arrays: dict) -> str:
    """What x_<split> should have been, and what it has: x_train sets every split's shape."""
    odd, ref = arrays[f"x_{split}"].shape[1:], arrays["x_train"].shape[1:]
    if len(odd) == len(ref) == 1:
        return (f"expected {ref[0]} features per row in x_{split} (as in x_train), got "
                f"{odd[0]}: give every split the same feature columns, in the same order")
    return (f"expected samples of shape {tuple(ref)} in x_{split} (as in x_train), got "
            f"{tuple(odd)}: give every split samples of one shape")


def _check_pair(path: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    where = f"{path}: x_{split}/y_{split}"
    if x.dtype.kind not in "fiub":
        raise DataError(f"{where}: x_{split} has dtype {x.dtype}; inputs must be numeric")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            pass  # whole-valued floats are accepted as labels
        else:
            raise DataError(
                f"{where}: y_{split} has dtype {y.dtype}; labels must be integers 0..K-1"
            )
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(
            f"{where}: x_{split} has shape {x.shape}; expected (N, F), (N, C, L) or (N, C, H, W)"
        )
    if y.ndim != 1:
        raise DataError(f"{where}: y_{split} has shape {y.shape}; expected (N,)")
    if len(x) == 0:
        raise DataError(f"{where}: the {split} split is empty")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} inputs but {len(y)} labels; lengths must match")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(f"{where}: x_{split} holds {bad} NaN/Inf value(s); clean or impute them")
    if y.min() < 0:
        raise DataError(f"{where}: y_{split} has negative label {y.min()}; use 0..K-1")


def raw_splits_from(arrays: dict[str, np.ndarray], cfg: SplitFields, path: Path) -> RawSplits:
    """The checked splits of the npz contract's arrays (the csv source builds the same dict)."""
    return raw_from_arrays(arrays, path, cfg.val_fraction, cfg.seed)
