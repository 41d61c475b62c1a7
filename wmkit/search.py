"""Nearest-neighbour search by cosine: exact faiss inner product over L2-normalised float32 rows.

One wrapper for the training probe and the audit (through :mod:`wmkit.metrics`), the retrieval bench
and edit search (``wmkit index`` / ``wmkit search``), which also saves and loads the index with
faiss's own file format. faiss is imported on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def unit_rows(x: Any) -> np.ndarray:
    """Rows divided by their L2 norm, as contiguous float32 (a zero row stays zero)."""
    from wmkit.metrics import l2_normalize

    return np.ascontiguousarray(l2_normalize(x), dtype=np.float32)


def cosine_index(gallery: Any):
    """A ``faiss.IndexFlatIP`` holding the unit rows of ``gallery``."""
    import faiss

    g = unit_rows(gallery)
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(g)
    return index


def nearest(queries: Any, gallery: Any = None, k: int = 10, *, index=None) -> tuple[np.ndarray, np.ndarray]:
    """``(cosines, indices)``, both ``[Q, min(k, gallery size)]``: each query's most similar gallery
    rows, most similar first (ties as faiss orders them). Pass ``index`` to search a built one."""
    index = cosine_index(gallery) if index is None else index
    q = unit_rows(queries)
    if q.shape[1] != index.d:
        raise ValueError(f"query dim {q.shape[1]} != gallery dim {index.d}")
    sims, found = index.search(q, max(1, min(int(k), index.ntotal)))
    return sims, found.astype(np.int64)


def save_index(index, path: Path) -> None:
    """Write ``index`` in faiss's own file format (no pickle)."""
    import faiss

    faiss.write_index(index, str(path))


def load_index(path: Path):
    """Read an index written by :func:`save_index`."""
    import faiss

    return faiss.read_index(str(path))
