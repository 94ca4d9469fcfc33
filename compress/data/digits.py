"""scikit-learn's handwritten digits: 1,797 real 8x8 images, 10 classes, shipped offline."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from compress.data.splits import LabelledSplitFields, RawSplits, stratified_split


class DigitsData(LabelledSplitFields):
    source: Literal["digits"] = "digits"
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="fraction held out for test")


def load_digits_raw(cfg: DigitsData) -> RawSplits:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8), pixel values 0..16
    y = d.target.astype(np.int64)
    x_rest, y_rest, x_test, y_test = stratified_split(x, y, cfg.test_fraction, cfg.seed)
    frac = cfg.val_fraction / (1 - cfg.test_fraction)
    x_train, y_train, x_val, y_val = stratified_split(x_rest, y_rest, frac, cfg.seed)
    return RawSplits(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=10)
