"""The trivial world models every audited number stands beside.

Described in full in docs/audit.md#baselines-wmkitauditbaselinespy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from wmkit import metrics
from wmkit.linear_edit import fit_linear_edit

#: a 95% Wilson interval
WILSON_Z = 1.959964


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def beats_copy(pred: np.ndarray, target_before: np.ndarray, target_after: np.ndarray) -> dict:
    """Share of pairs with cos(ẑ, target(after)) > cos(target(before), target(after)), with its
    95% Wilson interval. Pairs whose two targets are identical cannot be beaten and count as losses."""
    wins = metrics.row_cosines(pred, target_after) > metrics.row_cosines(target_before, target_after)
    n, k = int(wins.size), int(wins.sum())
    low, high = wilson_interval(k, n)
    return {"rate": k / n if n else float("nan"), "wins": k, "n": n, "low": low, "high": high}


def knn_at(queries: np.ndarray, gallery: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """``{"1": KNN@1, ...}``: query i's own gallery row i among its k nearest (cosine)."""
    acc = metrics.knn_accuracy(queries, gallery, ks)
    return {str(k): float(acc[k]) for k in ks}


def copy_baselines(*, pred: np.ndarray, online_before: np.ndarray, target_before: np.ndarray,
                   target_after: np.ndarray, ks: Sequence[int]) -> dict:
    """KNN@k of copy and online copy over the targets, the model's ratios to copy, ``beats_copy``."""
    copy = knn_at(target_before, target_after, ks)
    online = knn_at(online_before, target_after, ks)
    model = knn_at(pred, target_after, ks)
    ratio = {k: (model[k] / copy[k] if copy[k] > 0 else float("nan")) for k in copy}
    return {"copy_knn_at_k": copy, "online_copy_knn_at_k": online, "knn_ratio_to_copy": ratio,
            "beats_copy": beats_copy(pred, target_before, target_after)}


def distractor_gallery(pred: np.ndarray, target_before: np.ndarray, target_after: np.ndarray) -> dict:
    """Gallery = every target(after) and every target(before). For each prediction, where its nearest
    neighbour is: its own after (right), its own before (it predicted "nothing changes"), or another
    pair's state. Copy itself always lands on its own before, so this separates prediction from copying."""
    n = len(target_after)
    gallery = np.concatenate([target_after, target_before])
    ranks = metrics.nearest_indices(pred, gallery, 1)[:, 0]
    rows = np.arange(n)
    own_after = float(np.mean(ranks == rows))
    own_before = float(np.mean(ranks == rows + n))
    return {"gallery_size": int(2 * n), "nearest_own_after": own_after, "nearest_own_before": own_before,
            "nearest_other": 1.0 - own_after - own_before}


def linear_edit_baseline(*, train_features: np.ndarray, train_target_before: np.ndarray,
                         train_target_after: np.ndarray, features: np.ndarray, target_before: np.ndarray,
                         target_after: np.ndarray, pred: np.ndarray, ks: Sequence[int]) -> dict:
    """The linear edit model fit on training pairs, evaluated on the audited pairs: its KNN@k,
    ``beats_copy``, and how often the model's prediction is closer to target(after) than it is."""
    fit = fit_linear_edit(train_features, train_target_before, train_target_after)
    linear = (np.asarray(target_before, dtype=np.float64) + np.asarray(features, dtype=np.float64) @ fit["weights"]
              + fit["bias"]).astype(np.float32)
    model_wins = metrics.row_cosines(pred, target_after) > metrics.row_cosines(linear, target_after)
    return {"linear_edit_knn_at_k": knn_at(linear, target_after, ks),
            "linear_edit": {"beats_copy": beats_copy(linear, target_before, target_after),
                            "alpha": fit["alpha"], "fit_pairs": fit["fit_pairs"], "features": int(features.shape[1]),
                            "model_closer_rate": float(np.mean(model_wins))},
            "linear_prediction": linear}


def identical_states(after_tokens: np.ndarray, target_after: np.ndarray,
                     queries: dict[str, np.ndarray]) -> dict:
    """KNN@1 where retrieving a target whose after state is token-identical to the query's own counts as
    found, for each named query set, beside the ceiling of plain KNN@1.

    Identical after states have identical targets, so plain KNN@1 can find at most one pair of each group
    (ties go to one row): ``ceiling_knn_at_1`` = groups / N. No model can beat it, so a miss against an
    identical twin is a miss of the metric, not of the model."""
    tokens = np.asarray(after_tokens).reshape(len(after_tokens), -1)
    _, group, sizes = np.unique(tokens, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    n = len(group)
    found = {}
    for name, q in queries.items():
        nearest = metrics.nearest_indices(q, target_after, 1)[:, 0]
        found[name] = float(np.mean(group[nearest] == group))
    return {"ceiling_knn_at_1": len(sizes) / n if n else float("nan"),
            "pairs_with_identical_after": float(np.mean(sizes[group] > 1)) if n else float("nan"),
            "knn_at_1": found}


def target_drift(current: np.ndarray, initial: np.ndarray) -> dict:
    """Mean (and 10th percentile of) cos(today's target(x), the initial target(x)) over the audited
    states. Near 1: the target is still the random network it started as."""
    cos = metrics.row_cosines(current, initial)
    return {"mean_cos_to_initial": float(np.mean(cos)), "p10_cos_to_initial": float(np.quantile(cos, 0.1)),
            "states": int(cos.size)}
