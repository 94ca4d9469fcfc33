"""scikit-learn's bundled tables (shipped with the package, read offline): wine (178 x 13,
3 classes, features from ~0.1 to ~1,700), breast_cancer (569 x 30, 2 classes, ~0.001 to
~4,000) and iris (150 x 4, 3 classes). Inputs stay (N, F): layout NF, one mean/std per feature."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from compress.data.splits import LabelledSplitFields, RawSplits, stratified_split

TABLES = ("wine", "breast_cancer", "iris")


class SklearnData(LabelledSplitFields):
    source: Literal["sklearn"] = "sklearn"
    name: Literal["wine", "breast_cancer", "iris"] = Field(
        description="which scikit-learn table (sklearn.datasets.load_<name>)")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="fraction held out for test")


def load_sklearn_raw(cfg: SklearnData) -> RawSplits:
    from sklearn import datasets

    d = getattr(datasets, f"load_{cfg.name}")()
    x = np.asarray(d.data, dtype=np.float32)  # (N, F): a table, never a sequence
    y = np.asarray(d.target, dtype=np.int64)
    x_rest, y_rest, x_test, y_test = stratified_split(x, y, cfg.test_fraction, cfg.seed)
    frac = cfg.val_fraction / (1 - cfg.test_fraction)
    x_train, y_train, x_val, y_val = stratified_split(x_rest, y_rest, frac, cfg.seed)
    labels = [str(n) for n in d.target_names]
    return RawSplits(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=len(labels),
                     class_labels=labels)
