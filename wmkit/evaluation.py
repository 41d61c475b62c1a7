"""The in-training validation probe (reference §5): one fixed validation batch, every ``eval_every``.

Every KNN number is reported with its gallery size and random baseline beside it, so a batch-128
number can never pass for a full-validation one.
"""

from __future__ import annotations

import torch

from wmkit import metrics


@torch.no_grad()
def probe_validation(model, before: torch.Tensor, after: torch.Tensor, actions: torch.Tensor) -> dict:
    """Metrics of ``model`` (in eval mode) on one validation batch; JSON-ready floats.

    - ``cos``: mean cos(pred, target(after)); ``delta_cos``: mean cos(pred − online(before),
      target(after) − online(before)) — the reference's best-checkpoint criterion;
    - ``copy_cos``: the reference's cross-encoder copy baseline cos(online(before), target(after)),
      ``lift = cos − copy_cos``; ``copy_cos_paper`` / ``lift_paper``: paper Eq. 1, target on both sides;
    - ``erank_*``: uncentred effective rank (reference batch form) of online(before), target(after), pred;
    - ``knn_at_k``: prediction -> target retrieval over this batch's gallery (``gallery_size``).
    """
    emb = model.embed(before, after, actions)
    online, target, pred = emb.online_before.float(), emb.target_after.float(), emb.pred.float()
    cos = metrics.mean_cos(pred, target)
    copy_ref = metrics.copy_cos_reference(online, target)
    copy_paper = metrics.copy_cos_paper(emb.target_before.float(), target)
    n = pred.shape[0]
    knn = metrics.knn_accuracy(pred, target, ks=(1, 5))
    return {
        "cos": cos,
        "delta_cos": metrics.delta_cos(pred, target, online),
        "copy_cos": copy_ref,
        "lift": cos - copy_ref,
        "copy_cos_paper": copy_paper,
        "lift_paper": cos - copy_paper,
        "erank_online": metrics.effective_rank_uncentred(online),
        "erank_target": metrics.effective_rank_uncentred(target),
        "erank_pred": metrics.effective_rank_uncentred(pred),
        "knn_at_1": knn[1],
        "knn_at_5": knn[5],
        "random_knn_at_1": metrics.random_baseline(1, n),
        "random_knn_at_5": metrics.random_baseline(5, n),
        "gallery_size": n,
    }
