"""Warnings an audit derives: about the prepared data, the train/validation gap, and the result itself."""

from __future__ import annotations

from wmkit.audit import memorisation, verdict

DROPPED_WARN_FRACTION = 0.5
"""Warn when the domain dropped more than this fraction of the source's rows: data of another domain
(kernel sources read by the code domain, say) mostly fails the domain's filters."""


def data_warnings(meta: dict, domain_name: str) -> list[dict]:
    """Warnings about the prepared data itself (from ``PreparedData.meta``)."""
    counts = meta.get("counts") or {}
    read, kept = counts.get("rows_read"), counts.get("kept")
    out = []
    if read and kept is not None and kept < (1 - DROPPED_WARN_FRACTION) * read:
        reasons = sorted((counts.get("dropped") or {}).items(), key=lambda kv: -kv[1])[:3]
        out.append({"kind": "data_dropped", "severity": "warning",
                    "message": f"the {domain_name} domain kept only {kept} of {read} rows of {meta.get('source')} "
                               f"(dropped: {', '.join(f'{k} {v}' for k, v in reasons) or '?'}): is this data of "
                               f"another domain?"})
    rate = (meta.get("truncation") or {}).get("rate")
    if isinstance(rate, (int, float)) and rate > 0.05:
        out.append({"kind": "truncation", "severity": "info",
                    "message": f"{100 * rate:.1f}% of pairs are identical after truncation to data.max_len "
                               f"(defect D6): their edit lies beyond the window"})
    return out


def train_val_gap(train: dict, val: dict) -> dict:
    """Train-sample versus validation metrics at equal N, and the memorisation rule."""
    keys = ("knn_at_1", "knn_at_5", "knn_at_10", "cos", "delta_cos", "gap", "lift")
    return {"sample_size": val["gallery_size"],
            "train": {k: train[k] for k in keys}, "val": {k: val[k] for k in keys},
            "difference": {k: train[k] - val[k] for k in keys},
            "memorising": verdict.memorising(train["knn_at_5"], val["knn_at_5"])}


def collect_warnings(result: dict) -> list[dict]:
    """Warnings derived from a result (besides those recorded by training); each has kind, message."""
    out = []
    gap = result.get("train_gap")
    if gap and gap.get("memorising"):
        out.append({"kind": "memorisation", "severity": "warning",
                    "message": f"train KNN@5 {gap['train']['knn_at_5']:.4f} vs validation {gap['val']['knn_at_5']:.4f} "
                               f"over equal galleries of N={gap['sample_size']}: the model retrieves training pairs far "
                               f"better than held-out ones"})
    nd = result.get("near_duplicates")
    if nd and nd.get("near_duplicates"):
        severe = nd["fraction"] > memorisation.NEAR_DUPLICATE_WARN_FRACTION
        out.append({"kind": "near_duplicates", "severity": "warning" if severe else "info",
                    "message": f"{nd['near_duplicates']} of {nd['val_checked']} validation pairs "
                               f"({100 * nd['fraction']:.2f}%) nearly duplicate a training transition: content "
                               f"5-gram Jaccard >= {nd['content_threshold']} and edit Jaccard >= "
                               f"{nd['edit_threshold']} ({nd['exact_duplicates']} token-identical; "
                               f"{nd.get('unchanged_in_window', 0)} with no edit inside the token window)"})
    if nd and nd.get("similar_content"):
        out.append({"kind": "similar_content", "severity": "info",
                    "message": f"{nd['similar_content']} of {nd['val_checked']} validation pairs "
                               f"({100 * nd['similar_content_fraction']:.1f}%) share >= {nd['content_threshold']:.0%} of "
                               f"their content with a training pair (usually another edit of the same file)"})
    trend = result.get("training_trend")
    if trend and trend.get("falling_while_loss_falls"):
        out.append({"kind": "knn_falling", "severity": "warning",
                    "message": f"probe KNN@5 fell from {trend['peak_knn_at_5']:.4f} (step {trend['peak_step']}) to "
                               f"{trend['last_knn_at_5']:.4f} (step {trend['steps'][-1]}) while the training loss "
                               f"fell from {trend['loss_at_peak']:.4f} to {trend['loss_at_last']:.4f}: memorising"})
    action = result.get("action_sensitivity")
    if action and action.get("ignores_action"):
        out.append({"kind": "ignores_action", "severity": "warning", "message": action["statement"]})
    for name in ("online", "target", "pred"):
        c = result.get("erank_centred", {}).get(name, {})
        if c and c.get("normalised", 1.0) < verdict.COLLAPSE_NORMALISED_ERANK:
            out.append({"kind": f"collapse_{name}", "severity": "warning",
                        "message": f"{name} embeddings use {c['erank']:.2f} effective directions "
                                   f"({c['normalised']:.3f} of min(N-1, D)): collapsed"})
    return out
