"""Cosines between predictions, targets and baselines (mean, delta, copy, cross, spread)."""

from __future__ import annotations

from typing import Any

import numpy as np

from wmkit.metrics.arrays import _matrix, l2_normalize


def row_cosines(a: Any, b: Any) -> np.ndarray:
    """``cos(a_i, b_i)`` for every row ``i`` (0 where either row is zero)."""
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return (l2_normalize(a) * l2_normalize(b)).sum(axis=1)



def mean_cos(a: Any, b: Any) -> float:
    """Mean over rows of ``cos(a_i, b_i)`` on raw (not centred) vectors
    (reference §5 (docs/reference.md#s5) "cos")."""
    return float(row_cosines(a, b).mean())


def delta_cos(pred: Any, target: Any, origin: Any) -> float:
    """Mean ``cos(ẑ − z_on, z̄ − z_on)``: predicted change versus actual change from ``origin``.

    Reference §5 (docs/reference.md#s5): ``origin`` is online(before), ``pred`` the prediction,
    ``target`` target(after).
    """
    o = _matrix(origin, "origin")
    return mean_cos(_matrix(pred, "pred") - o, _matrix(target, "target") - o)


def copy_cos_reference(online_before: Any, target_after: Any) -> float:
    """Copy baseline as the reference code computes it: mean ``cos(online(before), target(after))``.

    A cross-encoder cosine (reference §5, docs/reference.md#s5); it drifts below 0 once the online encoder
    moves away from the slow EMA target, which is how a lift above 1 can happen.
    """
    return mean_cos(online_before, target_after)


def copy_cos_paper(target_before: Any, target_after: Any) -> float:
    """Copy baseline as paper Eq. 1 defines it: mean ``cos(target(before), target(after))``."""
    return mean_cos(target_before, target_after)


def lift(cos: float, copy_cos: float) -> float:
    """How much the prediction beats copying the current state: ``cos − copy_cos``."""
    return float(cos) - float(copy_cos)


def cross_cosines(pred: Any, target: Any) -> dict[str, float]:
    """Prediction–target cosine on the diagonal versus off it
    (reference §5 (docs/reference.md#s5) full-val audit).

    ``diag`` = mean ``cos(ẑ_i, z̄_i)``; ``off`` = mean over ``i ≠ j`` of ``cos(ẑ_i, z̄_j)``;
    ``gap = diag − off`` (the paper's "gap" column). Computed in O(N·D) from row sums.
    """
    p, t = l2_normalize(pred), l2_normalize(target)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} must pair row for row")
    n = p.shape[0]
    diag_sum = float((p * t).sum())
    total = float(p.sum(axis=0) @ t.sum(axis=0))
    diag = diag_sum / n
    off = (total - diag_sum) / (n * (n - 1)) if n > 1 else float("nan")
    return {"diag": diag, "off": off, "gap": diag - off}


def mean_offdiag_self_cos(x: Any) -> float:
    """Mean over ``i ≠ j`` of ``cos(x_i, x_j)``: near 1 when all rows point the same way."""
    u = l2_normalize(x)
    n = u.shape[0]
    if n < 2:
        return float("nan")
    s = u.sum(axis=0)
    return float((s @ s - (u * u).sum()) / (n * (n - 1)))


def std_of_l2_normalized(x: Any) -> float:
    """Collapse monitor: mean over dimensions of the std (over rows) of the L2-normalised rows.

    About ``1/sqrt(D)`` for embeddings spread over the sphere, 0 when every row points the same way
    (population std, ``ddof=0``).
    """
    return float(l2_normalize(x).std(axis=0).mean())
