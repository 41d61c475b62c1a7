"""Geometry of edits (reference §7, docs/reference.md#s7): how far a state moves, and how straight
trajectories and loops run."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from wmkit.metrics.arrays import _EPS, _matrix, as_numpy
from wmkit.metrics.cosines import mean_cos


def signal_ratio(before: Any, after: Any) -> float:
    """Mean over rows of ``‖z_after − z_before‖ / ‖z_before‖``
    (reference §7 (docs/reference.md#s7) PROBE 5)."""
    b, a = _matrix(before, "before"), _matrix(after, "after")
    return float((np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), _EPS)).mean())



def _trajectory_pairs(trajectory: Any) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(j − 1, j)`` of consecutive rows that share a trajectory id.

    Rows must already be in trajectory order (successive edits of one file are adjacent rows);
    a negative id means "no trajectory".
    """
    ids = as_numpy(trajectory, dtype=np.int64).reshape(-1)
    if ids.size < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    same = (ids[1:] == ids[:-1]) & (ids[1:] >= 0)
    cur = np.nonzero(same)[0] + 1
    return cur - 1, cur


def consecutive_delta_cos(deltas: Any, trajectory: Any) -> float:
    """Mean ``cos(δ_j, δ_{j−1})`` over successive edits of the same trajectory
    (reference §7, docs/reference.md#s7).

    ``deltas`` [N, D] holds one edit per row (``z_after − z_before``, i.e. ``δ_j = z_{j+1} − z_j``
    for a chained trajectory); ``trajectory`` [N] groups rows, which must be in order. NaN when no
    trajectory has two edits.
    """
    d = _matrix(deltas, "deltas")
    prev, cur = _trajectory_pairs(trajectory)
    if prev.size == 0:
        return float("nan")
    return mean_cos(d[cur], d[prev])


def straightness(deltas: Any, trajectory: Any) -> float:
    """Fraction of successive edits with curvature ``κ_j = ‖δ_j − δ_{j−1}‖ / ‖δ_{j−1}‖ < 1``.

    Reference §7 (docs/reference.md#s7) (``curvature_analysis``, score 0.132 on its 6-loop model). Same inputs
    as :func:`consecutive_delta_cos`; NaN when no trajectory has two edits.
    """
    d = _matrix(deltas, "deltas")
    prev, cur = _trajectory_pairs(trajectory)
    if prev.size == 0:
        return float("nan")
    kappa = np.linalg.norm(d[cur] - d[prev], axis=1) / np.maximum(np.linalg.norm(d[prev], axis=1), _EPS)
    return float((kappa < 1.0).mean())


def trajectory_pair_count(trajectory: Any) -> int:
    """How many (δ_{j−1}, δ_j) pairs :func:`straightness` averages over."""
    return int(_trajectory_pairs(trajectory)[0].size)


def loop_straightness(loops: Sequence[Any]) -> list[float]:
    """Straightness of the path an embedding takes through the encoder loops.

    For each interior loop ℓ (1 ≤ ℓ ≤ L − 2, 0-based), the mean over rows of
    ``cos(z_{ℓ+1} − z_ℓ, z_ℓ − z_{ℓ−1})`` (reference §7 (docs/reference.md#s7), the cross-seed "straightness"
    [I]); a 3-loop encoder gives one value. Fewer than 3 loops give an empty list.
    """
    zs = [_matrix(z, f"loop {i}") for i, z in enumerate(loops)]
    return [mean_cos(zs[i + 1] - zs[i], zs[i] - zs[i - 1]) for i in range(1, len(zs) - 1)]
