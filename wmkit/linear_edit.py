"""The linear model of an edit: ridge regression from edit features to target(after) − target(before).

Pure NumPy. The audit fits it as a baseline (:mod:`wmkit.audit.baselines`); training can fit it to
warm-start an action encoder that holds it as a special case (:mod:`wmkit.warm_start`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: ridge penalties tried on an inner split of the training pairs (never the audited pairs)
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
#: share of the training pairs held out to choose the penalty
RIDGE_INNER_VAL = 0.2
RIDGE_SEED = 0
#: the audit fits its linear baseline on at least this many training pairs (all, when fewer)
LINEAR_FIT_PAIRS = 8192


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias minimising ‖(x − x̄)W − (y − ȳ)‖² + alpha‖W‖² (the bias is not penalised)."""
    return _Moments.of(x, y).ridge(alpha)


class _Moments:
    """The sums a ridge fit needs (count, Σx, Σy, xᵀx, xᵀy): those of a subset are the whole's minus the
    rest's, so an inner split costs one Gram matrix of its smaller part, not one per penalty tried."""

    def __init__(self, n, sx, sy, xx, xy):
        self.n, self.sx, self.sy, self.xx, self.xy = n, sx, sy, xx, xy

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> "_Moments":
        return cls(len(x), x.sum(0), y.sum(0), x.T @ x, x.T @ y)

    def __sub__(self, other: "_Moments") -> "_Moments":
        return _Moments(self.n - other.n, self.sx - other.sx, self.sy - other.sy, self.xx - other.xx,
                        self.xy - other.xy)

    def ridge(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        mx, my = self.sx / self.n, self.sy / self.n
        gram = self.xx - self.n * np.outer(mx, mx)  # (x − x̄)ᵀ(x − x̄)
        gram[np.diag_indices_from(gram)] += alpha
        w = np.linalg.solve(gram, self.xy - self.n * np.outer(mx, my))
        return w, my - mx @ w


def fit_linear_edit(features: np.ndarray, target_before: np.ndarray, target_after: np.ndarray,
                    alphas: Sequence[float] = RIDGE_ALPHAS) -> dict:
    """Ridge from edit features to target(after) − target(before), on training pairs only: the penalty
    is chosen by mean squared error on an inner hold-out of those pairs, then refit on all of them."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(target_after, dtype=np.float64) - np.asarray(target_before, dtype=np.float64)
    n = len(x)
    order = np.random.default_rng(RIDGE_SEED).permutation(n)
    n_val = max(1, int(round(RIDGE_INNER_VAL * n))) if n >= 5 else 0
    whole = _Moments.of(x, y)
    scores = {}
    if n_val:
        inner_val = order[:n_val]
        inner_fit = whole - _Moments.of(x[inner_val], y[inner_val])
        for alpha in alphas:
            w, b = inner_fit.ridge(alpha)
            scores[alpha] = float(np.mean((x[inner_val] @ w + b - y[inner_val]) ** 2))
        alpha = min(scores, key=scores.get)
    else:
        alpha = alphas[len(alphas) // 2]
    w, b = whole.ridge(alpha)
    return {"weights": w, "bias": b, "alpha": float(alpha), "fit_pairs": int(n),
            "inner_mse": {str(a): s for a, s in scores.items()}}
