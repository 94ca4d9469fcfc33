"""Seeded, stratified splits shared by every source."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from compress.errors import DataError


class SplitFields(BaseModel):
    """Fields every data source has: the seed and the split fractions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="seed of the train/val/test split")
    val_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="fraction of the training data held out for validation"
    )


MIN_PER_CLASS = 3


@dataclass
class RawSplits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_labels: list[str] = field(default_factory=list)
    # how a file on disk becomes one raw sample, e.g. {"image": {...}} (compress.preprocessing)
    source_steps: dict = field(default_factory=dict)


def stratified_split(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off `fraction` of (x, y), keeping class proportions; returns keep_x, keep_y, x, y."""
    from sklearn.model_selection import train_test_split

    try:
        xa, xb, ya, yb = train_test_split(
            x, y, test_size=fraction, random_state=seed, stratify=y, shuffle=True
        )
    except ValueError:
        # Too few samples of some class to stratify: fall back to a plain seeded split.
        xa, xb, ya, yb = train_test_split(x, y, test_size=fraction, random_state=seed)
    return xa, ya, xb, yb



def check_class_counts(y: np.ndarray, labels: list[str], where: str, noun: str) -> None:
    """Every class needs a few samples to appear in train, val and test after a split."""
    counts = np.bincount(y, minlength=len(labels))
    few = [(labels[i], int(n)) for i, n in enumerate(counts) if n < MIN_PER_CLASS]
    if few:
        shown = ", ".join(f"'{c}' has {n}" for c, n in few[:3])
        raise DataError(f"{where}: too few {noun} per class ({shown}); every class needs at "
                        f"least {MIN_PER_CLASS} to appear in the train, val and test splits")
