"""What an audit measures on embeddings: KNN blocks and curves, the summary metrics, action sensitivity."""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from wmkit import metrics
from wmkit.audit import verdict

KNN_KS = (1, 5, 10, 50)
CURVE_KS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


class _Clock:
    def __init__(self):
        self.search = 0.0

    def knn(self, queries, gallery, ks) -> dict[int, float]:
        t0 = time.perf_counter()
        try:
            return metrics.knn_accuracy(queries, gallery, ks)
        finally:
            self.search += time.perf_counter() - t0

    def ranks(self, queries, gallery, max_k) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return metrics.knn_ranks(queries, gallery, max_k)
        finally:
            self.search += time.perf_counter() - t0


def knn_block(pred: np.ndarray, target: np.ndarray, ks: Sequence[int] = KNN_KS, clock: _Clock | None = None) -> dict:
    """``knn_at_k`` and ``random_knn_at_k`` for every k (gallery = all N targets)."""
    n = len(target)
    acc = (clock or _Clock()).knn(pred, target, ks)
    out = {}
    for k in ks:
        out[f"knn_at_{k}"] = acc[k]
        out[f"random_knn_at_{k}"] = metrics.random_baseline(k, n)
    return out


def summary_metrics(*, online_before, target_before, target_after, pred, ks: Sequence[int] = KNN_KS,
                    clock: _Clock | None = None, full: bool = True) -> dict:
    """Discriminability of one set of embeddings; JSON-ready. ``full=False`` skips spectra;
    ``target_before=None`` skips the paper's copy baseline."""
    n, d = pred.shape
    out: dict[str, Any] = {"gallery_size": int(n), "embedding_dim": int(d)}
    out.update(knn_block(pred, target_after, ks, clock))
    cross = metrics.cross_cosines(pred, target_after)
    out.update(cross_diag=cross["diag"], cross_off=cross["off"], gap=cross["gap"])
    cos = metrics.mean_cos(pred, target_after)
    copy_ref = metrics.copy_cos_reference(online_before, target_after)
    out.update(cos=cos, delta_cos=metrics.delta_cos(pred, target_after, online_before),
               copy_cos=copy_ref, lift=metrics.lift(cos, copy_ref))
    if target_before is not None:
        copy_paper = metrics.copy_cos_paper(target_before, target_after)
        out.update(copy_cos_paper=copy_paper, lift_paper=metrics.lift(cos, copy_paper))
    if full:
        out.update(erank_online=metrics.effective_rank_uncentred(online_before, normalize_rows=True),
                   erank_target=metrics.effective_rank_uncentred(target_after, normalize_rows=True),
                   erank_pred=metrics.effective_rank_uncentred(pred, normalize_rows=True))
        out["erank_centred"] = {}
        for name, x in (("online", online_before), ("target", target_after), ("pred", pred)):
            c = metrics.effective_rank_centred(x)
            out["erank_centred"][name] = {"erank": c.erank, "normalised": c.normalised}
        out["std_l2"] = {name: metrics.std_of_l2_normalized(x) for name, x in
                         (("online", online_before), ("target", target_after), ("pred", pred))}
        out["std_l2_spread"] = 1.0 / math.sqrt(d)
        out["offdiag_self_cos"] = {"online": metrics.mean_offdiag_self_cos(online_before),
                                   "target": metrics.mean_offdiag_self_cos(target_after)}
    return out


def knn_curve(pred: np.ndarray, target: np.ndarray, shuffled: np.ndarray | None = None,
              clock: _Clock | None = None) -> dict:
    """KNN@k for k in :data:`CURVE_KS` (up to N), with random and shuffled-action curves."""
    n = len(target)
    ks = [k for k in CURVE_KS if k <= n] or [1]
    clock = clock or _Clock()
    ranks = clock.ranks(pred, target, max(ks))
    out = {"k": ks, "rate": [float((ranks < k).mean()) for k in ks],
           "random": [metrics.random_baseline(k, n) for k in ks]}
    if shuffled is not None:
        sr = clock.ranks(shuffled, target, max(ks))
        out["shuffled_action"] = [float((sr < k).mean()) for k in ks]
    return out


def action_sensitivity(*, true: dict, shuffled_pred: np.ndarray, target_after: np.ndarray,
                       online_before: np.ndarray, actions: np.ndarray, perm: np.ndarray,
                       clock: _Clock | None = None) -> dict:
    """Predictions made with another sample's action (``actions[perm]``) versus the true ones
    (D10, docs/reference.md#d10).

    ``true`` holds the true-action ``knn_at_k``, ``cos`` and ``delta_cos``. ``ignores_action`` follows
    :func:`wmkit.audit.verdict.ignores_action` (``None`` = inconclusive).
    """
    n = len(target_after)
    out = knn_block(shuffled_pred, target_after, KNN_KS, clock)
    out = {k: v for k, v in out.items() if not k.startswith("random_")}
    out["cos"] = metrics.mean_cos(shuffled_pred, target_after)
    out["delta_cos"] = metrics.delta_cos(shuffled_pred, target_after, online_before)
    out["true_cos"], out["true_delta_cos"] = true["cos"], true["delta_cos"]
    for k in (1, 5):
        t = out[f"true_knn_at_{k}"] = true[f"knn_at_{k}"]
        out[f"knn_at_{k}_ratio"] = out[f"knn_at_{k}"] / t if t > 0 else float("nan")
        out[f"knn_at_{k}_drop"] = t - out[f"knn_at_{k}"]
    out["cos_drop"] = true["cos"] - out["cos"]
    out["pred_shift_cos"] = metrics.mean_cos(shuffled_pred, true["pred"]) if "pred" in true else None
    a = np.asarray(actions, dtype=np.float64)
    out["identical_action_fraction"] = float(np.mean(np.all(np.isclose(a, a[perm]), axis=1)))
    rnd = metrics.random_baseline(5, n)
    out["ignores_action"] = verdict.ignores_action(true_knn1=true["knn_at_1"], true_knn5=true["knn_at_5"],
                                                   shuffled_knn1=out["knn_at_1"], shuffled_knn5=out["knn_at_5"],
                                                   random_knn5=rnd)
    if out["ignores_action"] is None:
        out["statement"] = (f"inconclusive: KNN@5 with true actions ({true['knn_at_5']:.4f}) is under "
                            f"{verdict.ACTION_TEST_MIN_OVER_RANDOM:g}x random ({rnd:.4f}), so there is no retrieval "
                            f"for a wrong action to lose")
    elif out["ignores_action"]:
        out["statement"] = (f"the predictor ignores the action: with every action swapped for another sample's, "
                            f"KNN@1 is {out['knn_at_1']:.4f} vs {true['knn_at_1']:.4f} with the true action "
                            f"({100 * out['knn_at_1_ratio']:.0f}%) and KNN@5 {out['knn_at_5']:.4f} vs "
                            f"{true['knn_at_5']:.4f} ({100 * out['knn_at_5_ratio']:.0f}%)")
    else:
        out["statement"] = (f"the predictor uses the action: swapping actions drops KNN@1 from "
                            f"{true['knn_at_1']:.4f} to {out['knn_at_1']:.4f}, KNN@5 from {true['knn_at_5']:.4f} to "
                            f"{out['knn_at_5']:.4f} and cos by {out['cos_drop']:+.4f}")
    return out
