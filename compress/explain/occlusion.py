"""Occlusion in ONNX Runtime: slide a window over every sample, fill it with a constant, and
record how far each class's logit falls. The occluded copies of many samples go through one
session in large batches, so a whole model is explained in a few `session.run` calls, and an int8
model is explained exactly as it runs. Tables (N, F) get feature ablation: the window slides
along the features, one at a time by default.

A feature's attribution is the mean effect of the windows that cover it (Captum's `Occlusion`
does the same), so overlapping windows give a map at the input's own resolution.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from compress.errors import ConfigError


def auto_window(size: int, table: bool) -> int:
    """The default window along an axis of `size` steps: one feature for tables, else about an
    eighth of the axis, at least 2 (8x8 digits: 2x2 patches; MNIST-1D's 40 steps: 5)."""
    return 1 if table else max(2, round(size / 8))


@dataclass(frozen=True)
class Windows:
    """The sliding windows over a sample's spatial axes (H, W), (L,) or, for tables, (F,)."""

    spatial: tuple[int, ...]
    window: tuple[int, ...]
    stride: tuple[int, ...]
    channel_axis: bool  # images and sequences: the window spans every channel

    @classmethod
    def for_input(cls, sample_shape: list[int], window: int | None, stride: int | None,
                  where: str) -> Windows:
        """Windows for samples shaped `sample_shape` (no batch axis): (C, H, W), (C, L) or (F,).

        Raises:
            ConfigError: the window is larger than the input along some axis.
        """
        table = len(sample_shape) == 1
        spatial = tuple(sample_shape if table else sample_shape[1:])
        sizes = tuple(window or auto_window(d, table) for d in spatial)
        if any(w > d for w, d in zip(sizes, spatial, strict=True)):
            raise ConfigError(f"{where}, field 'window': {window} is larger than the input "
                              f"({'x'.join(map(str, spatial))} along the axes it slides over); "
                              f"use at most {min(spatial)}")
        steps = tuple(stride or max(1, w // 2) for w in sizes)
        return cls(spatial, sizes, steps, not table)

    @cached_property
    def starts(self) -> list[tuple[int, ...]]:
        """Every window's first index per axis; the last window of an axis ends at its end."""
        per_axis = []
        for d, w, s in zip(self.spatial, self.window, self.stride, strict=True):
            starts = list(range(0, d - w + 1, s))
            if starts[-1] + w < d:
                starts.append(d - w)  # so that every feature is covered
            per_axis.append(starts)
        return list(itertools.product(*per_axis))

    @cached_property
    def masks(self) -> np.ndarray:
        """(windows, *spatial) booleans: which features each window covers."""
        out = np.zeros((len(self.starts), *self.spatial), dtype=bool)
        for i, start in enumerate(self.starts):
            out[(i, *(slice(a, a + w) for a, w in zip(start, self.window, strict=True)))] = True
        return out

    @property
    def features(self) -> int:
        return int(np.prod(self.spatial))

    def describe(self) -> str:
        shape = "x".join(map(str, self.window))
        step = "x".join(map(str, self.stride))
        kind = "feature ablation" if not self.channel_axis else "occlusion"
        return (f"{kind}: {len(self.starts)} windows of {shape} (stride {step}) over "
                f"{'x'.join(map(str, self.spatial))}")

    def overlap(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether windows `a[i]` and `b[i]` (indices into `starts`) share a feature."""
        starts = np.asarray(self.starts)
        gap = np.abs(starts[a] - starts[b])
        return np.all(gap < np.asarray(self.window), axis=1)


@dataclass
class Occlusion:
    """What occluding every window of every sample did to one model.

    Attributes:
        logits: (n, classes) on the untouched samples.
        effects: (n, windows, classes) drop of each class's score (log-probability or logit)
            when each window is filled: positive = the window held evidence for that class.
    """

    logits: np.ndarray
    effects: np.ndarray

    def window_effects(self, target: np.ndarray) -> np.ndarray:
        """(n, windows): the drop of each sample's `target` class."""
        return self.effects[np.arange(len(target)), :, target]

    def maps(self, target: np.ndarray, windows: Windows) -> np.ndarray:
        """(n, features): per feature, the mean effect of the windows covering it."""
        cover = windows.masks.reshape(len(windows.starts), -1).astype(np.float64)
        return (self.window_effects(target) @ cover) / cover.sum(axis=0)

    def top_window(self, target: np.ndarray) -> np.ndarray:
        """(n,): index of the window whose filling hurts the `target` class most."""
        return self.window_effects(target).argmax(axis=1)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def occlude(session, x: np.ndarray, windows: Windows, fill: float = 0.0,
            output: str = "log_softmax", max_rows: int = 4096) -> Occlusion:
    """Run `x` (n, *sample) and every occluded copy of it through one ORT session.

    Args:
        session: an onnxruntime InferenceSession whose first output is the logits.
        x: normalised inputs, float32.
        windows: where to occlude.
        fill: value written into the window (0 = the training mean, inputs being normalised).
        output: what the effect is measured on: "log_softmax" (the class's log-probability:
            a change every class shares, such as less ink overall, cancels out) or "logit".
        max_rows: occluded copies per `session.run` call (bounds the memory of one batch).
    """
    score = log_softmax if output == "log_softmax" else (lambda z: z)
    name = session.get_inputs()[0].name
    masks = windows.masks[:, None] if windows.channel_axis else windows.masks
    n_windows = len(windows.starts)
    logits = session.run(None, {name: x})[0]
    base = score(logits)
    effects = np.empty((len(x), n_windows, logits.shape[1]), dtype=np.float32)
    per_call = max(1, max_rows // n_windows)
    fill_value = np.float32(fill)
    for i in range(0, len(x), per_call):
        chunk = x[i : i + per_call]
        occluded = np.where(masks[None], fill_value, chunk[:, None])  # (b, windows, *sample)
        out = session.run(None, {name: occluded.reshape(-1, *x.shape[1:])})[0]
        effects[i : i + len(chunk)] = base[i : i + len(chunk), None] - score(out).reshape(
            len(chunk), n_windows, -1)
    return Occlusion(logits=logits, effects=effects)
