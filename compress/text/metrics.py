"""How close a student's sentence embeddings are to its teacher's: mean cosine, and how many of
each sentence's nearest neighbours (by the teacher) the student finds again."""

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


def neighbour_recall(student: np.ndarray, teacher: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each sentence's teacher top-k neighbours among the student's top-k."""
    if len(teacher) <= k:
        raise ValueError(f"neighbour recall@{k} needs more than {k} sentences, got {len(teacher)}")
    s, t = top_k_neighbours(student, k), top_k_neighbours(teacher, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(s, t, strict=True)]))
