"""MNIST-1D (Greydanus 2020), generated offline by the `mnist1d` package: 1x40, 10 classes."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from compress.data.splits import LabelledSplitFields, RawSplits, stratified_split


class Mnist1dData(LabelledSplitFields):
    source: Literal["mnist1d"] = "mnist1d"
    num_samples: int = Field(10000, ge=100, le=2_000_000, description="samples generated in all")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="fraction held out for test")


def load_mnist1d_raw(cfg: Mnist1dData) -> RawSplits:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = cfg.num_samples
    args.train_split = 1 - cfg.test_fraction
    args.seed = cfg.seed
    # make_dataset builds the benchmark from its templates in memory; it never downloads.
    d = make_dataset(args)
    x_rest = np.asarray(d["x"], dtype=np.float32)[:, None, :]
    y_rest = np.asarray(d["y"], dtype=np.int64)
    x_test = np.asarray(d["x_test"], dtype=np.float32)[:, None, :]
    y_test = np.asarray(d["y_test"], dtype=np.int64)
    x_train, y_train, x_val, y_val = stratified_split(x_rest, y_rest, cfg.val_fraction, cfg.seed)
    return RawSplits(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=10)
