"""Queries and gallery of the retrieval bench: sizes, the seeded draw, and the checks against training rows.

See the protocol in :mod:`wmkit.bench.retrieval` (step 1 and "Sizes").
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np

from wmkit.data.split import EVAL_SPLIT_GROW, EVAL_SPLIT_LABELS
from wmkit.errors import DataError, RecipeError

MIN_QUERIES = 10
#: the gallery must fill a top-10 list
MIN_GALLERY = 10


def choose_sizes(available: int, queries: int, gallery: int, split: str = "val") -> tuple[int, int, str | None]:
    """``(queries, gallery, note)`` that fit ``available`` rows of ``split`` (``val`` or ``holdout``,
    named in the messages; see the module docstring)."""
    pool = EVAL_SPLIT_LABELS[split]
    if queries < 1 or gallery < 1:
        raise RecipeError(f"--queries {queries} / --gallery {gallery}: both must be positive")
    if available < MIN_QUERIES + MIN_GALLERY:
        raise DataError(f"only {available} usable rows in {pool}; the retrieval benchmark needs at "
                        f"least {MIN_QUERIES + MIN_GALLERY} ({MIN_QUERIES} queries + {MIN_GALLERY} gallery); use "
                        f"more data or {EVAL_SPLIT_GROW[split]}")
    if queries + gallery <= available:
        return queries, gallery, None
    if available - queries >= MIN_GALLERY:
        g = available - queries
        return queries, g, (f"{available} rows in {pool}: gallery shrunk from {gallery} to {g} "
                            f"({queries} queries kept)")
    q = max(MIN_QUERIES, min(queries, available * queries // (queries + gallery)))
    g = available - q
    if g < MIN_GALLERY:
        q, g = available - MIN_GALLERY, MIN_GALLERY
    return q, g, (f"{available} rows in {pool}: queries shrunk from {queries} to {q} and gallery "
                  f"from {gallery} to {g}")


def sample_queries_gallery(pool: np.ndarray, queries: int, gallery: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``pool`` (row indices) with ``seed``; first ``queries`` → queries, next ``gallery``."""
    pool = np.asarray(pool, dtype=np.int64)
    if queries + gallery > len(pool):
        raise ValueError(f"{queries} + {gallery} rows asked for from a pool of {len(pool)}")
    order = np.random.default_rng(seed).permutation(len(pool))
    return pool[order[:queries]], pool[order[queries:queries + gallery]]


def _id_list(ids: Any, rows: np.ndarray) -> list:
    arr = np.asarray(ids)
    return arr[np.asarray(rows, dtype=np.int64)].tolist()


def training_overlap(bench_ids: Iterable, training_ids: Iterable) -> int:
    """How many of ``bench_ids`` are also training row ids."""
    train = set(training_ids)
    return int(sum(1 for x in bench_ids if x in train))


def _pair_digest(before: np.ndarray, after: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=12)
    h.update(np.ascontiguousarray(before).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(after).tobytes())
    return h.digest()


def content_duplicates(before: np.ndarray, after: np.ndarray, train_before: np.ndarray, train_after: np.ndarray) -> int:
    """How many pairs ``(before[i], after[i])`` have exactly the tokens of some training pair.

    Pairs whose two sides are identical after the cut to ``max_len`` are not counted: their tokens
    say nothing about the edit (many unrelated commits share a file's unchanged head).
    """
    train = {_pair_digest(b, a) for b, a in zip(train_before, train_after) if not np.array_equal(b, a)}
    return int(sum(1 for b, a in zip(before, after) if not np.array_equal(b, a) and _pair_digest(b, a) in train))
