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
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += alpha
    w = np.linalg.solve(gram, xc.T @ yc)
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
    scores = {}
    if n_val:
        inner_val, inner_fit = order[:n_val], order[n_val:]
        for alpha in alphas:
            w, b = ridge(x[inner_fit], y[inner_fit], alpha)
            scores[alpha] = float(np.mean((x[inner_val] @ w + b - y[inner_val]) ** 2))
        alpha = min(scores, key=scores.get)
    else:
        alpha = alphas[len(alphas) // 2]
    w, b = ridge(x, y, alpha)
    return {"weights": w, "bias": b, "alpha": float(alpha), "fit_pairs": int(n),
            "inner_mse": {str(a): s for a, s in scores.items()}}
