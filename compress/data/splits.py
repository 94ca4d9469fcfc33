"""Seeded, stratified splits shared by every source."""

from __future__ import annotations

import dataclasses
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


class LabelledSplitFields(SplitFields):
    """The split fields of sources with labelled arrays, plus the few-labels regime."""

    labels_per_class: int | None = Field(
        None, ge=1, description="keep this many labelled training samples per class (seeded, "
        "class-balanced); the rest of the training split becomes unlabeled data, which "
        "`distill` can use as its transfer set (transfer: unlabeled). Val and test never change. "
        "null = every training label")


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
    # training samples whose labels are set aside (labels_per_class): inputs only
    x_unlabeled: np.ndarray | None = None


def keep_labels(raw: RawSplits, per_class: int | None, seed: int, where: str) -> RawSplits:
    """`per_class` labelled training samples of every class (seeded, class-balanced); the rest
    of the training split goes to `x_unlabeled`. Val and test are untouched."""
    if per_class is None:
        return raw
    counts = np.bincount(raw.y_train, minlength=raw.num_classes)
    if counts.min() < per_class:
        c = int(counts.argmin())
        name = raw.class_labels[c] if raw.class_labels else str(c)
        raise DataError(f"{where}: labels_per_class {per_class} is more than the training split "
                        f"holds of class '{name}' ({int(counts[c])}); use at most "
                        f"{int(counts.min())}, or null for every label")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(raw.y_train), dtype=bool)
    for c in range(raw.num_classes):
        members = np.flatnonzero(raw.y_train == c)
        keep[rng.choice(members, size=per_class, replace=False)] = True
    # original order kept: the trainer shuffles every epoch
    return dataclasses.replace(raw, x_train=raw.x_train[keep], y_train=raw.y_train[keep],
                               x_unlabeled=raw.x_train[~keep])


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
