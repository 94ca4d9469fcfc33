"""How alike two models' attribution maps are, sample by sample, summarised with a
percentile-bootstrap 95 % CI over the samples:

- `spearman`: rank correlation of the two maps (signed: evidence for the class ranks high,
  evidence against it low); a constant map correlates 0 with anything;
- `topk_overlap`: share of the k most important features (k = 10 % of the features) in common;
- `top_region_agreement`: share of samples whose most important windows overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("spearman", "topk_overlap", "top_region_agreement")
CI_LEVEL = 0.95


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) Spearman rank correlation of each row of `a` with the same row of `b` (average
    ranks for ties)."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    num = (ra * rb).sum(axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def top_k(maps: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of the k largest values per row (stable: ties go to the earlier feature)."""
    return np.argsort(-maps, axis=1, kind="stable")[:, :k]


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """(n,) share of the top-k features of `a` that are in the top-k of `b`."""
    ta, tb = top_k(a, k), top_k(b, k)
    return np.array([len(np.intersect1d(x, y)) / k for x, y in zip(ta, tb, strict=True)])


def k_for(features: int) -> int:
    """k of the top-k overlap: 10 % of the features, at least one."""
    return max(1, round(0.1 * features))


def bootstrap_ci(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values` (samples resampled with
    replacement, `resamples` times, seeded)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(axis=1)
    tail = (1 - CI_LEVEL) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


@dataclass
class Attribution:
    """One model's explanation of the sample: per-feature maps and most important window."""

    maps: np.ndarray  # (n, features)
    top: np.ndarray  # (n,) window index


def fidelity(ref: Attribution, other: Attribution, overlap, resamples: int,
             seed: int) -> dict:
    """Every metric of `other` against `ref`: {metric: {mean, ci_low, ci_high}}, plus the
    per-sample Spearman values (`per_sample`, for the pictures).

    Args:
        overlap: `Windows.overlap`, which says whether two top windows agree.
    """
    per = {
        "spearman": spearman_rows(ref.maps, other.maps),
        "topk_overlap": topk_overlap(ref.maps, other.maps, k_for(ref.maps.shape[1])),
        "top_region_agreement": overlap(ref.top, other.top).astype(np.float64),
    }
    out: dict = {}
    for name, values in per.items():
        lo, hi = bootstrap_ci(values, resamples, seed)
        out[name] = {"mean": float(values.mean()), "ci_low": lo, "ci_high": hi}
    out["per_sample"] = per["spearman"]
    return out
