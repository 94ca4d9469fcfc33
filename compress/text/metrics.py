"""How close a student's sentence embeddings are to its teacher's: mean cosine, and whether the
student retrieves what the teacher retrieves, by two standard measures (Jegou et al., "Product
quantization for nearest neighbor search", TPAMI 2011; ann-benchmarks):

- recall@k (`neighbour_recall`, "1-recall@k"): the share of sentences whose nearest neighbour by
  the teacher is among the student's k nearest;
- k-overlap@k (`top_k_overlap`, "k-recall@k"): the mean share of the teacher's k nearest
  neighbours that are also the student's k nearest, a much stricter measure: the 10th and 11th
  neighbours of a sentence are often nearly tied, so even the teacher's own int8 model, with
  a cosine of 0.99 to it, keeps about 90 % of its top-10 lists."""

from __future__ import annotations

import numpy as np


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of matching rows of `a` and `b`."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return float((a * b).sum(1).mean())


def top_k_neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """Indices (N, k) of each row's k most cosine-similar other rows, most similar first."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)  # a sentence is not its own neighbour
    # Stable sort on -sim: ties go to the lower index, the same way for both models.
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def _check(teacher: np.ndarray, k: int, what: str) -> None:
    if len(teacher) <= k:
        raise ValueError(f"{what}@{k} needs more than {k} sentences, got {len(teacher)}")


def neighbour_recall(student: np.ndarray, teacher: np.ndarray, k: int = 10) -> float:
    """Share of sentences whose teacher nearest neighbour is among the student's top-k."""
    _check(teacher, k, "neighbour recall")
    s, t = top_k_neighbours(student, k), top_k_neighbours(teacher, 1)[:, 0]
    return float(np.mean([b in a for a, b in zip(s, t, strict=True)]))


def top_k_overlap(student: np.ndarray, teacher: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each sentence's teacher top-k neighbours among the student's top-k."""
    _check(teacher, k, "top-k overlap")
    s, t = top_k_neighbours(student, k), top_k_neighbours(teacher, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(s, t, strict=True)]))
