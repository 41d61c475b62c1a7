"""Nearest-neighbour discriminability: does each prediction find its own target among all targets?"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def random_baseline(k: int, n: int) -> float:
    """KNN@k of a random ranking over a gallery of ``n`` items: ``min(k, n) / n``."""
    if n <= 0:
        raise ValueError("gallery size must be positive")
    return min(k, n) / n


def knn_ranks(queries: Any, gallery: Any, max_k: int) -> np.ndarray:
    """0-based rank of gallery item ``i`` among query ``i``'s top-``max_k`` cosine neighbours.

    Queries and gallery rows are L2-normalised and searched with ``faiss.IndexFlatIP`` (exact
    inner product, float32). A query whose own item is not in its top ``max_k`` gets rank
    ``max_k``. Ties are ordered as faiss returns them.
    """
    from wmkit.search import nearest

    q_shape, g_shape = tuple(np.shape(queries)), tuple(np.shape(gallery))
    if q_shape != g_shape:
        raise ValueError(f"queries {q_shape} and gallery {g_shape} must pair row for row")
    n = np.shape(gallery)[0]
    _, found = nearest(queries, gallery, max_k)
    hit = found == np.arange(n)[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1), int(max_k))


def nearest_indices(queries: Any, gallery: Any, k: int) -> np.ndarray:
    """Indices ``[Q, k]`` of each query's ``k`` most cosine-similar gallery rows (any gallery size)."""
    from wmkit.search import nearest

    return nearest(queries, gallery, k)[1]


def knn_accuracy(queries: Any, gallery: Any, ks: Sequence[int] = (1, 5, 10, 50)) -> dict[int, float]:
    """KNN@k for each ``k``: fraction of queries ``i`` whose gallery item ``i`` is in the top-k.

    Similarity is cosine; the gallery is all rows of ``gallery`` (reference §5 (docs/reference.md#s5):
    prediction ẑ_i as query, every target z̄_j as gallery). Compare with :func:`random_baseline` ``(k, N)``.
    """
    ks = [int(k) for k in ks]
    ranks = knn_ranks(queries, gallery, max(ks))
    return {k: float((ranks < k).mean()) for k in ks}
