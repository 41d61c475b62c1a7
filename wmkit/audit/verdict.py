"""The audit's one-line verdict: explicit rules over the audit's numbers.

Each rule is a named constant with its own docstring, so a verdict can always be traced to a number
and a threshold. The rules are checked in the order of :data:`VERDICT_ORDER`; the first that fires
is the headline and every rule that fires is listed with its reason. "healthy" is said only when no
rule fired *and* the model beats both trivial world models it stands beside: copy ("nothing
changes") and a linear model of the edit. Without those baselines the verdict is "unverified".
"""

from __future__ import annotations

import math

COLLAPSE_NORMALISED_ERANK = 0.05
"""Collapsed readout if the centred effective rank of online(before), divided by min(N − 1, D), is
below this (reference §7 (docs/reference.md#s7) erank form). 0.05 of a 128-D space is about
6 used directions."""

COLLAPSE_STD_FRACTION = 0.1
"""Collapsed readout if the std of L2-normalised online embeddings (mean over dimensions) is below
this fraction of ``1/sqrt(D)``, the value for directions spread over the sphere: every embedding
then points almost the same way."""

COLLAPSED_PREDICTOR_ERANK_RATIO = 0.1
"""Collapsed predictor if the uncentred effective rank of the predictions is below this fraction of
the targets' (both reference §5 (docs/reference.md#s5) full-val form), or the predictions' own std-of-L2 test
fails while the readout is not collapsed. The paper's best model sits at 6.1 / 53.3 ≈ 0.11, its named
bottleneck, just above the line."""

IGNORES_ACTION_KNN_RATIO = 0.9
"""Ignores the action if, with every prediction made from another sample's action, KNN@1 and KNN@5 are
both at least this fraction of their values with the true action (defect D10, docs/reference.md#d10):
the action barely changes what is retrieved. Both, because KNN@5 alone saturates for a model that
starts from copy: where copy already retrieves 94% at k = 5, a model at 100% keeps 90% with any
action even when the action is what lifts its KNN@1 from copy's 82% to 99%."""

ACTION_TEST_MIN_OVER_RANDOM = 2.0
"""The action test only judges when the true KNN@5 is at least this many times its random baseline;
below that there is no retrieval to lose, and the report says the test is inconclusive."""

MEMORISING_KNN_RATIO = 2.0
"""Memorising if KNN@5 on an equal-size sample of training rows is at least this many times KNN@5 on
the validation rows (same gallery size)..."""

MEMORISING_MIN_DIFFERENCE = 0.05
"""... and the two differ by at least this much in absolute terms (so that 0.004 vs 0.002 does not
count)."""

NOT_DISCRIMINATIVE_OVER_RANDOM = 2.0
"""Not discriminative if KNN@5 of prediction → target is below this many times its random baseline
k/N: predictions retrieve their own target little better than chance."""

BEATS_COPY_MIN_RATE = 0.5
"""No better than copy if the prediction is closer to target(after) than target(before) is on fewer
than this share of pairs (``beats_copy``), or if its KNN@1 is below copy's KNN@1 over the same
gallery: predicting "nothing changes" would do as well."""

NO_BETTER_THAN_COPY = "no better than copy"
NO_BETTER_THAN_LINEAR = "no better than a linear model of the edit"
"""... if the prediction's KNN@1 is below the KNN@1 of a ridge regression from the bag of tokens the
edit removed and added to target(after) − target(before), fit on training pairs only."""

VERDICT_ORDER = ("collapsed readout", "collapsed predictor", NO_BETTER_THAN_COPY, NO_BETTER_THAN_LINEAR,
                 "not discriminative", "ignores action", "memorising")
"""Headline precedence: a collapsed readout explains everything after it, and so on."""

HEALTHY = "healthy"
UNVERIFIED = "unverified"
"""Said instead of healthy when no rule fired but the copy or linear-edit baseline could not be
computed, so the model was never compared with them."""


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def judge(result: dict) -> dict:
    """``{"verdict": headline, "verdicts": [...], "reasons": [...]}`` for an audit result dict.

    Reads ``erank_centred``, ``std_l2``, ``embedding_dim``, ``erank_pred``/``erank_target``,
    ``knn_at_5``/``random_knn_at_5``, ``action_sensitivity`` and ``train_gap`` (any may be absent).
    """
    fired: dict[str, str] = {}
    dim = result.get("embedding_dim") or 0
    healthy_std = 1.0 / math.sqrt(dim) if dim else float("nan")
    centred = result.get("erank_centred", {})
    std = result.get("std_l2", {})

    online_norm = centred.get("online", {}).get("normalised")
    online_std = std.get("online")
    readout_reasons = []
    if _finite(online_norm) and online_norm < COLLAPSE_NORMALISED_ERANK:
        readout_reasons.append(f"centred normalised erank of online(before) {online_norm:.3f} < "
                               f"{COLLAPSE_NORMALISED_ERANK}")
    if _finite(online_std) and dim and online_std < COLLAPSE_STD_FRACTION * healthy_std:
        readout_reasons.append(f"std of L2-normalised online {online_std:.4f} < {COLLAPSE_STD_FRACTION} x "
                               f"1/sqrt(D) = {COLLAPSE_STD_FRACTION * healthy_std:.4f}")
    if readout_reasons:
        fired["collapsed readout"] = "; ".join(readout_reasons)

    pred_reasons = []
    er_pred, er_target = result.get("erank_pred"), result.get("erank_target")
    if _finite(er_pred) and _finite(er_target) and er_target > 0 \
            and er_pred < COLLAPSED_PREDICTOR_ERANK_RATIO * er_target:
        pred_reasons.append(f"erank of predictions {er_pred:.2f} < {COLLAPSED_PREDICTOR_ERANK_RATIO} x "
                            f"erank of targets {er_target:.2f}")
    pred_std = std.get("pred")
    if _finite(pred_std) and dim and pred_std < COLLAPSE_STD_FRACTION * healthy_std \
            and "collapsed readout" not in fired:
        pred_reasons.append(f"std of L2-normalised predictions {pred_std:.4f} < "
                            f"{COLLAPSE_STD_FRACTION * healthy_std:.4f}")
    if pred_reasons:
        fired["collapsed predictor"] = "; ".join(pred_reasons)

    knn1 = result.get("knn_at_1")
    copy1 = (result.get("copy_knn_at_k") or {}).get("1")
    beats = (result.get("beats_copy") or {}).get("rate")
    copy_reasons = []
    # a tie is not a win: healthy is said only of a model that beats the baselines
    if _finite(knn1) and _finite(copy1) and knn1 <= copy1:
        copy_reasons.append(f"KNN@1 {knn1:.4f} <= copy's {copy1:.4f}")
    if _finite(beats) and beats < BEATS_COPY_MIN_RATE:
        copy_reasons.append(f"closer to target(after) than copy on {beats:.1%} of pairs < {BEATS_COPY_MIN_RATE:.0%}")
    if copy_reasons:
        fired[NO_BETTER_THAN_COPY] = "; ".join(copy_reasons)
    linear1 = (result.get("linear_edit_knn_at_k") or {}).get("1")
    closer = (result.get("linear_edit") or {}).get("model_closer_rate")
    linear_reasons = []
    if _finite(knn1) and _finite(linear1) and knn1 <= linear1:
        linear_reasons.append(f"KNN@1 {knn1:.4f} <= the linear edit model's {linear1:.4f}")
    if _finite(closer) and closer < BEATS_COPY_MIN_RATE:
        linear_reasons.append(f"closer to target(after) than the linear edit model on {closer:.1%} of pairs "
                              f"< {BEATS_COPY_MIN_RATE:.0%}")
    if linear_reasons:
        fired[NO_BETTER_THAN_LINEAR] = "; ".join(linear_reasons)

    knn5, rnd5 = result.get("knn_at_5"), result.get("random_knn_at_5")
    if _finite(knn5) and _finite(rnd5) and rnd5 < 1.0 and knn5 < NOT_DISCRIMINATIVE_OVER_RANDOM * rnd5:
        fired["not discriminative"] = (f"KNN@5 {knn5:.4f} < {NOT_DISCRIMINATIVE_OVER_RANDOM:g} x random "
                                       f"{rnd5:.4f} (gallery N={result.get('gallery_size')})")

    action = result.get("action_sensitivity") or {}
    if action.get("ignores_action"):
        fired["ignores action"] = (f"KNN@1 / KNN@5 with shuffled actions {action.get('knn_at_1'):.4f} / "
                                   f"{action.get('knn_at_5'):.4f} >= {IGNORES_ACTION_KNN_RATIO} x with true actions "
                                   f"{knn1:.4f} / {knn5:.4f}")

    gap = result.get("train_gap") or {}
    if gap.get("memorising"):
        fired["memorising"] = (f"train KNN@5 {gap['train']['knn_at_5']:.4f} vs validation "
                               f"{gap['val']['knn_at_5']:.4f} (N={gap.get('sample_size')} each)")

    trend = result.get("training_trend") or {}
    if trend.get("falling_while_loss_falls") and "memorising" not in fired:
        fired["memorising"] = (f"probe KNN@5 fell from {trend.get('peak_knn_at_5', float('nan')):.4f} "
                               f"(step {trend.get('peak_step')}) while the training loss kept falling")

    # a centred erank that the warnings call collapsed (target, predictions too) never sits under "healthy"
    for name, label in (("target", "collapsed readout"), ("pred", "collapsed predictor")):
        norm = centred.get(name, {}).get("normalised")
        if _finite(norm) and norm < COLLAPSE_NORMALISED_ERANK and label not in fired:
            fired[label] = f"centred normalised erank of {name} {norm:.3f} < {COLLAPSE_NORMALISED_ERANK}"

    verdicts = [v for v in VERDICT_ORDER if v in fired]
    if verdicts:
        return {"verdict": verdicts[0], "verdicts": verdicts, "reasons": [f"{v}: {fired[v]}" for v in verdicts]}
    missing = [name for name, value in (("copy", copy1), ("beats_copy", beats), ("linear edit model", linear1))
               if not _finite(value)]
    if missing:
        return {"verdict": UNVERIFIED, "verdicts": [UNVERIFIED],
                "reasons": [f"no rule fired, but the model was not compared with {', '.join(missing)}: healthy is "
                            f"said only of a model that beats copy and the linear edit model"]}
    return {"verdict": HEALTHY, "verdicts": [HEALTHY],
            "reasons": [f"no rule fired, and KNN@1 {knn1:.4f} beats copy's {copy1:.4f} and the linear edit "
                        f"model's {linear1:.4f} (see docs/audit.md for the thresholds)"]}


def ignores_action(*, true_knn1: float, true_knn5: float, shuffled_knn1: float, shuffled_knn5: float,
                   random_knn5: float) -> bool | None:
    """Rule :data:`IGNORES_ACTION_KNN_RATIO`; ``None`` (inconclusive) when the true KNN@5 is under
    :data:`ACTION_TEST_MIN_OVER_RANDOM` x random."""
    if true_knn5 < ACTION_TEST_MIN_OVER_RANDOM * random_knn5:
        return None
    return bool(shuffled_knn1 >= IGNORES_ACTION_KNN_RATIO * true_knn1
                and shuffled_knn5 >= IGNORES_ACTION_KNN_RATIO * true_knn5)


def memorising(train_knn5: float, val_knn5: float) -> bool:
    """Rules :data:`MEMORISING_KNN_RATIO` and :data:`MEMORISING_MIN_DIFFERENCE` together."""
    return bool(train_knn5 >= MEMORISING_KNN_RATIO * val_knn5
                and train_knn5 - val_knn5 >= MEMORISING_MIN_DIFFERENCE)
