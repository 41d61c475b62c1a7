"""The in-training validation probe: a fixed gallery of validation pairs, every ``eval_every`` steps.

Every KNN number is reported with its gallery size, its random baseline and the copy baselines
beside it, so a probe number can never pass for a full-validation one, nor praise a model that
predicts worse than "nothing changes". The best checkpoint and early stops are chosen by a
discriminative criterion of the probe (:data:`SELECTION_CRITERIA`), never by delta cos or lift.
"""

from __future__ import annotations

from wmkit import metrics
from wmkit.encode import encode_transitions

#: ``train.select`` -> (what it measures, how to read it from a probe result); larger is better
SELECTION_CRITERIA = {
    "knn1_over_copy": "prediction KNN@1 minus copy's KNN@1 (copy: target(before) as the query)",
    "knn_at_1": "prediction KNN@1",
    "knn_at_5": "prediction KNN@5",
    "beats_copy": "share of pairs where cos(pred, target(after)) > cos(target(before), target(after))",
}


def criterion_value(probe: dict, criterion: str) -> float:
    """The value of ``criterion`` (a key of :data:`SELECTION_CRITERIA`) in a probe result."""
    if criterion not in SELECTION_CRITERIA:
        raise KeyError(f"unknown selection criterion {criterion!r}; choices: {', '.join(SELECTION_CRITERIA)}")
    return float(probe[criterion])


def probe_validation(model, before, after, actions, *,
                     chunk: int = 128) -> dict:
    """Metrics of ``model`` (in eval mode) on the probe gallery; JSON-ready floats.

    - ``cos``: mean cos(pred, target(after)); ``delta_cos``: mean cos(pred − online(before),
      target(after) − online(before)) (the reference's best-checkpoint criterion; only reported);
    - ``copy_cos``: the reference's cross-encoder copy baseline cos(online(before), target(after)),
      ``lift = cos − copy_cos``; ``copy_cos_paper`` / ``lift_paper``: paper Eq. 1, target on both sides;
    - ``erank_*``: uncentred effective rank (reference batch form) of online(before), target(after), pred;
    - ``knn_at_k``: prediction -> target retrieval over the gallery (``gallery_size``); ``copy_knn_at_k``
      and ``online_copy_knn_at_1`` the same with target(before) / online(before) as the query;
      ``knn1_over_copy`` = knn_at_1 − copy_knn_at_1; ``beats_copy``: share of pairs where the
      prediction is closer to target(after) than target(before) is.
    """
    # the three encoder passes the probe needs (online(after) is not one of them)
    enc = encode_transitions(model, before, after, actions, parts=frozenset({"target_before"}), chunk=chunk)
    online, target_before, target, pred = (enc[k] for k in ("online_before", "target_before", "target_after", "pred"))
    cos = metrics.mean_cos(pred, target)
    copy_ref = metrics.copy_cos_reference(online, target)
    copy_paper = metrics.copy_cos_paper(target_before, target)
    n = pred.shape[0]
    knn = metrics.knn_accuracy(pred, target, ks=(1, 5))
    copy = metrics.knn_accuracy(target_before, target, ks=(1, 5))
    online_copy = metrics.knn_accuracy(online, target, ks=(1,))
    beats = metrics.row_cosines(pred, target) > metrics.row_cosines(target_before, target)
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
        "copy_knn_at_1": copy[1],
        "copy_knn_at_5": copy[5],
        "online_copy_knn_at_1": online_copy[1],
        "knn1_over_copy": knn[1] - copy[1],
        "beats_copy": float(beats.mean()),
        "random_knn_at_1": metrics.random_baseline(1, n),
        "random_knn_at_5": metrics.random_baseline(5, n),
        "gallery_size": n,
    }
