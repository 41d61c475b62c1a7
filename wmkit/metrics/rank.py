"""Effective rank and spectrum of a set of embeddings (collapse shows here first)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from wmkit.metrics.arrays import _EPS, _matrix, l2_normalize


def _entropy_exp(weights: np.ndarray) -> float:
    """``exp(−Σ p log p)`` with ``p = weights / Σ weights`` (zero weights contribute 0)."""
    total = float(weights.sum())
    if total <= 0.0:
        return 0.0
    p = weights / total
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def effective_rank_uncentred(x: Any, *, normalize_rows: bool = False) -> float:
    """Effective rank in the reference's §5 (docs/reference.md#s5) form: ``exp(H(p))``, ``p = s / Σs``.

    ``s`` are the singular values of the **uncentred** matrix ``X`` [N, D] (rows not centred, so a
    common offset counts as one direction). With ``normalize_rows=True`` the rows are first
    L2-normalised, as the reference's full-validation audit does; its batch-128 training probe
    uses raw rows. Ranges from 1 (rank one: every row a multiple of one vector) to ``min(N, D)``;
    an all-zero matrix gives 0.
    """
    arr = l2_normalize(x) if normalize_rows else _matrix(x)
    s = np.linalg.svd(arr, compute_uv=False)
    return _entropy_exp(s)


class CentredRank(NamedTuple):
    """Effective rank of a centred matrix (reference §7 (docs/reference.md#s7) form) and its
    normalised value."""

    erank: float
    #: ``erank / min(N − 1, D)`` in [0, 1]
    normalised: float


def _centred_spectrum(x: Any) -> tuple[np.ndarray, float]:
    """Squared singular values of the column-centred matrix, zeroed if there is no variance."""
    arr = _matrix(x)
    centred = arr - arr.mean(axis=0, keepdims=True)
    s2 = np.linalg.svd(centred, compute_uv=False) ** 2
    # Rows that are all equal leave only rounding noise after centring: call that no variance.
    scale = float((arr ** 2).sum())
    if float(s2.sum()) <= 1e-18 * max(scale, _EPS):
        s2 = np.zeros_like(s2)
    return s2, scale


def effective_rank_centred(x: Any) -> CentredRank:
    """Effective rank in the reference's §7 (docs/reference.md#s7) (``isotropy_analysis``) form, normalised.

    Centre the columns of ``X`` [N, D], take its singular values ``S``, then
    ``erank = exp(H(S² / ΣS²))`` (entropy of the explained-variance spectrum), and
    ``normalised = erank / min(N − 1, D)``: a centred N×D matrix has rank at most ``N − 1``, so
    this is 1 for perfectly isotropic variance and near 0 for collapse. A set with no variance
    (all rows equal) has ``erank = 0``.
    """
    arr = _matrix(x)
    n, d = arr.shape
    s2, _ = _centred_spectrum(arr)
    erank = _entropy_exp(s2)
    cap = min(n - 1, d)
    return CentredRank(erank, erank / cap if cap > 0 else 0.0)


def top_singular_share(x: Any, *, centred: bool = True) -> float:
    """Share of the largest singular value in the spectrum: ``S₀² / ΣS²``
    (reference §7, docs/reference.md#s7).

    Centred by default, as the reference's ``isotropy_analysis``; 1.0 means one direction carries
    all the variance. A matrix with no variance gives 0.
    """
    if centred:
        s2, _ = _centred_spectrum(x)
    else:
        s2 = np.linalg.svd(_matrix(x), compute_uv=False) ** 2
    total = float(s2.sum())
    return float(s2.max() / total) if total > 0 else 0.0
