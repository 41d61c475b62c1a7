"""Scores of a ranking against a relevance judgement: MRR@10 and R@k (reference §6, docs/reference.md#s6)."""

from __future__ import annotations

from typing import Any

import numpy as np

from wmkit.metrics.arrays import as_numpy


Relevance = Any  # bool matrix [Q, G] or callable (query index, gallery index) -> bool


def relevance_hits(ranking: Any, relevant: Relevance, depth: int = 10) -> np.ndarray:
    """Bool [Q, depth]: whether the item at each of the first ``depth`` ranks is relevant.

    ``ranking`` [Q, ≥depth] holds gallery indices best first (−1 = empty slot, never relevant);
    ``relevant`` is a bool matrix [Q, G] or a predicate ``relevant(q, g) -> bool``.
    """
    rank = as_numpy(ranking, dtype=np.int64)
    if rank.ndim != 2:
        raise ValueError(f"ranking must be [Q, K], got shape {rank.shape}")
    rank = rank[:, :depth]
    if callable(relevant):
        hits = np.array([[g >= 0 and bool(relevant(q, int(g))) for g in row] for q, row in enumerate(rank)],
                        dtype=bool).reshape(rank.shape)
    else:
        rel = np.asarray(relevant, dtype=bool)
        if rel.shape[0] != rank.shape[0]:
            raise ValueError(f"relevance has {rel.shape[0]} rows for {rank.shape[0]} queries")
        safe = np.where(rank >= 0, rank, 0)
        hits = np.take_along_axis(rel, safe, axis=1) & (rank >= 0)
    return hits


def mrr_at_10(ranking: Any, relevant: Relevance) -> float:
    """Mean over queries of ``1 / rank`` of the first relevant item in the top 10, 0 if none.

    Reference §6 (docs/reference.md#s6) ("MRR", effectively MRR@10); ranks are 1-based.
    """
    hits = relevance_hits(ranking, relevant, depth=10)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    return float(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0).mean())


def recall_at_k(ranking: Any, relevant: Relevance, k: int) -> float:
    """Fraction of queries with at least one relevant item in the top ``k``
    (reference §6 (docs/reference.md#s6) R@k)."""
    hits = relevance_hits(ranking, relevant, depth=k)
    return float(hits.any(axis=1).mean())
