"""The terminal report of an audit: a verdict line, then sections of tables; warnings in colour.

:func:`render_report` only reads the JSON-ready result dict of :func:`wmkit.audit.run_audit` (or a
saved ``audit.json``), so a report can be re-rendered without the model.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

VERDICT_STYLE = {"healthy": "bold green", "memorising": "bold yellow", "ignores action": "bold yellow",
                 "not discriminative": "bold red", "collapsed predictor": "bold red", "collapsed readout": "bold red",
                 "no better than copy": "bold red", "no better than a linear model of the edit": "bold yellow",
                 "unverified": "bold yellow"}


def fmt(x, digits: int = 4) -> str:
    """A number for a table cell; ``-`` for missing values."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "-"
        return f"{x:.{digits}f}"
    return str(x)


def pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.2f}%"


def _ratio(value, base, digits: int = 1) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.{digits}f}x"


#: columns that hold words, not numbers (left-aligned)
_TEXT_COLUMNS = ("definition", "note", "value (text)")


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_edge=False, pad_edge=False)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 or col in _TEXT_COLUMNS else "right")
    return table


def verdict_line(result: dict) -> Text:
    """``verdict: <headline>`` in its colour, with the other rules that fired."""
    head = result.get("verdict", "?")
    text = Text("verdict: ", style="bold")
    text.append(head, style=VERDICT_STYLE.get(head, "bold"))
    others = [v for v in result.get("verdicts", []) if v != head]
    if others:
        text.append(f"  (also: {', '.join(others)})", style="yellow")
    return text


def knn_table(result: dict) -> Table:
    n = result.get("gallery_size")
    table = _table(f"Discriminability: prediction -> target(after), gallery N={fmt(n)}, beside its baselines",
                   "k", "model", "copy", "÷copy", "linear", "online", "random", "shuffled", "gallery")
    shuffled = result.get("action_sensitivity") or {}
    copy = result.get("copy_knn_at_k") or {}
    online = result.get("online_copy_knn_at_k") or {}
    linear = result.get("linear_edit_knn_at_k") or {}
    for k in (1, 5, 10, 50):
        v, r = result.get(f"knn_at_{k}"), result.get(f"random_knn_at_{k}")
        c = copy.get(str(k))
        table.add_row(f"KNN@{k}", pct(v), pct(c), _ratio(v, c, 2), pct(linear.get(str(k))), pct(online.get(str(k))),
                      pct(r), pct(shuffled.get(f"knn_at_{k}")), f"N={fmt(n)}")
    table.caption = ("copy: target(before) as the prediction (nothing changes); online: online(before) as it; "
                     "linear: ridge from the tokens the edit removed and added, fit on training pairs; random: k/N; "
                     "shuffled: the model with another pair's action")
    return table


def baselines_table(result: dict) -> Table | None:
    beats = result.get("beats_copy")
    if not beats:
        return None
    table = _table("Against copy and the linear edit model", "measure", "value", "definition")
    table.add_row("beats copy", f"{pct(beats.get('rate'))} [{pct(beats.get('low'))}, {pct(beats.get('high'))}]",
                  "pairs where cos(pred, target(after)) > cos(target(before), target(after)), 95% Wilson interval")
    linear = result.get("linear_edit") or {}
    if linear:
        lb = linear.get("beats_copy") or {}
        table.add_row("linear edit beats copy", pct(lb.get("rate")),
                      f"the same for the linear edit model (ridge alpha {fmt(linear.get('alpha'), 3)}, fit on "
                      f"{fmt(linear.get('fit_pairs'))} training pairs)")
        table.add_row("model closer than linear", pct(linear.get("model_closer_rate")),
                      "pairs where the model's prediction is closer to target(after) than the linear model's")
    dg = result.get("distractor_gallery") or {}
    if dg:
        table.add_row("nearest = own after", pct(dg.get("nearest_own_after")),
                      f"gallery of every target(after) and every target(before) (N={fmt(dg.get('gallery_size'))})")
        table.add_row("nearest = own before", pct(dg.get("nearest_own_before")),
                      "the prediction is closest to its own unchanged state: it predicted 'nothing changes'")
    same = result.get("identical_states") or {}
    if same:
        found = same.get("knn_at_1") or {}
        table.add_row("KNN@1, identical states found",
                      f"model {pct(found.get('model'))}, copy {pct(found.get('copy'))}, "
                      f"linear {pct(found.get('linear_edit'))}",
                      "retrieving a target whose after state is token-identical to the pair's own counts as found")
        table.add_row("KNN@1 ceiling", pct(same.get("ceiling_knn_at_1")),
                      f"the most plain KNN@1 can reach: {pct(same.get('pairs_with_identical_after'))} of pairs share "
                      f"their after state with another pair, and identical targets tie")
    drift = result.get("target_drift") or {}
    if drift:
        table.add_row("target drift", fmt(drift.get("mean_cos_to_initial")),
                      "mean cos(target(after), the initial target's) over the audited states: near 1 = still the "
                      "random initial network")
    return table


def cosine_table(result: dict) -> Table:
    table = _table("Cosines", "metric", "value", "definition")
    rows = [("cross diag", "cross_diag", "mean cos(pred_i, target_i)"),
            ("cross off", "cross_off", "mean cos(pred_i, target_j), i != j"),
            ("gap", "gap", "diag - off"),
            ("cos", "cos", "mean cos(pred, target(after))"),
            ("delta cos", "delta_cos", "cos(pred - online(before), target(after) - online(before))"),
            ("copy_cos (reference)", "copy_cos", "cos(online(before), target(after)): cross-encoder"),
            ("copy_cos (paper Eq. 1)", "copy_cos_paper", "cos(target(before), target(after))"),
            ("lift", "lift", "cos - copy_cos (reference)"),
            ("lift (paper)", "lift_paper", "cos - copy_cos (paper)")]
    for label, key, definition in rows:
        table.add_row(label, fmt(result.get(key)), definition)
    return table


def spectrum_table(result: dict) -> Table:
    n, d = result.get("gallery_size"), result.get("embedding_dim")
    table = _table("Spectrum and collapse", "embeddings", "erank uncentred", "erank centred",
                   f"centred / min(N-1,D)", "std of L2-normalised", "off-diag self cos")
    centred = result.get("erank_centred", {})
    std = result.get("std_l2", {})
    self_cos = result.get("offdiag_self_cos", {})
    for name, key, label in (("online", "erank_online", "online(before)"), ("target", "erank_target", "target(after)"),
                             ("pred", "erank_pred", "predictions")):
        c = centred.get(name, {})
        table.add_row(label, fmt(result.get(key), 2), fmt(c.get("erank"), 2), fmt(c.get("normalised"), 3),
                      fmt(std.get(name)), fmt(self_cos.get(name)))
    table.caption = (f"uncentred: exp H(s/Σs) of L2-normalised rows (reference §5); centred: exp H(S²/ΣS²) "
                     f"(reference §7); std of L2 rows ≈ {fmt(result.get('std_l2_spread'))} = 1/sqrt(D={d}) when spread, "
                     f"0 when collapsed")
    return table


def action_table(result: dict) -> Table | None:
    a = result.get("action_sensitivity")
    if not a:
        return None
    table = _table(f"Action sensitivity (N={fmt(result.get('gallery_size'))}): predictions with another sample's action",
                   "metric", "true action", "shuffled action", "drop")
    for k in (1, 5, 10, 50):
        t, s = result.get(f"knn_at_{k}"), a.get(f"knn_at_{k}")
        table.add_row(f"KNN@{k}", pct(t), pct(s), pct(t - s) if t is not None and s is not None else "-")
    for key in ("cos", "delta_cos"):
        t, s = result.get(key), a.get(key)
        table.add_row(key.replace("_", " "), fmt(t), fmt(s), fmt(t - s) if t is not None and s is not None else "-")
    table.caption = (f"{fmt(100 * a.get('identical_action_fraction', 0), 1)}% of swapped actions equal the true one; "
                     f"mean cos(pred with shuffled action, pred) = {fmt(a.get('pred_shift_cos'))}")
    return table


def memorisation_table(result: dict) -> Table | None:
    gap = result.get("train_gap")
    if not gap:
        return None
    table = _table(f"Memorisation: train vs validation (N={fmt(gap.get('sample_size'))} each)",
                   "metric", "train", "validation", "train - val")
    for key in ("knn_at_1", "knn_at_5", "knn_at_10"):
        table.add_row(key.replace("knn_at_", "KNN@"), pct(gap["train"][key]), pct(gap["val"][key]),
                      pct(gap["difference"][key]))
    for key in ("cos", "delta_cos", "gap", "lift"):
        table.add_row(key.replace("_", " "), fmt(gap["train"][key]), fmt(gap["val"][key]), fmt(gap["difference"][key]))
    return table


def geometry_tables(geo: dict) -> list[Table]:
    tables = []
    loops = geo.get("signal_ratio") or []
    per_loop = _table("Geometry per loop (online encoder, before state)", "loop", "‖Δz‖/‖z‖", "delta-probe cos",
                      "loop straightness")
    straight = geo.get("loop_straightness") or []
    for i, ratio in enumerate(loops):
        # straightness is defined at interior loops 2..L-1 (1-based)
        s = straight[i - 1] if 1 <= i <= len(straight) else None
        per_loop.add_row(str(i + 1), fmt(ratio), fmt((geo.get("delta_probe") or [None] * len(loops))[i]), fmt(s))
    tables.append(per_loop)

    spec = _table("Geometry: spectrum", "quantity", "value")
    for label, key in (("erank of states (centred)", "erank_states"), ("erank of deltas (centred)", "erank_deltas")):
        c = geo.get(key, {})
        spec.add_row(label, f"{fmt(c.get('erank'), 2)} ({fmt(c.get('normalised'), 3)} of min(N-1,D))")
    share = geo.get("top_singular_share", {})
    spec.add_row("top singular share S0²/ΣS², online(before)", pct(share.get("online")))
    spec.add_row("top singular share S0²/ΣS², target(before)", pct(share.get("target")))
    traj = geo.get("trajectories", {})
    if "pairs" in traj:
        spec.add_row("consecutive delta cos (trajectories)", fmt(traj.get("consecutive_delta_cos")))
        spec.add_row("straightness: fraction κ<1 (trajectories)", fmt(traj.get("straightness")))
        spec.add_row("trajectory pairs / trajectories", f"{fmt(traj.get('pairs'))} / {fmt(traj.get('trajectories'))}")
    elif traj.get("note"):
        spec.add_row("trajectories", traj["note"])
    tables.append(spec)

    for name, probe in (geo.get("probes") or {}).items():
        if probe.get("skipped"):
            t = _table(f"Probe '{name}'", "note")
            t.add_row(probe["skipped"])
            tables.append(t)
            continue
        t = _table(f"Linear probe '{name}' ({len(probe.get('classes', []))} classes; fixed 80/20 split)", "loop",
                   "from before: acc", "from delta: acc", "majority baseline", "test rows")
        before = probe.get("from_before") or []
        delta = probe.get("from_delta") or [{}] * len(before)
        for b, dl in zip(before, delta):
            style = "" if b["accuracy"] > b["majority_baseline"] + 0.01 or dl.get("accuracy", 0) > b["majority_baseline"] + 0.01 else "yellow"
            t.add_row(str(b["loop"]), pct(b["accuracy"]), pct(dl.get("accuracy")), pct(b["majority_baseline"]),
                      fmt(b["n_test"]), style=style)
        shares = probe.get("class_shares") or {}
        t.caption = "class shares: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in shares.items())
        tables.append(t)
    return tables


def render_report(result: dict, console: Console | None = None) -> None:
    """Print the audit report of ``result`` to ``console`` (stdout by default)."""
    console = console or Console()
    console.print(verdict_line(result))
    for reason in result.get("reasons", []):
        console.print(f"  {reason}", style="dim")
    n = result.get("gallery_size")
    console.print(f"[bold]checkpoint[/] {result.get('checkpoint')} (step {fmt(result.get('step'))}, domain "
                  f"{result.get('domain')}, vocab {result.get('vocab_version')})")
    what = ("pairs of the held-out repositories (never trained on or probed)" if result.get("split") == "holdout"
            else "validation pairs (never trained on)")
    console.print(f"[bold]data[/] {result.get('data_source')}: {fmt(n)} of {fmt(result.get('val_rows_available'))} "
                  f"{what}, sample seed {result.get('sample_seed')}")
    selected = result.get("selection") or {}
    if selected.get("criterion"):
        console.print(f"[bold]selection[/] best checkpoint {selected.get('best')} by {selected['criterion']} = "
                      f"{fmt(selected.get('value'))} on the training probe")
    console.print()
    console.print(knn_table(result))
    b = baselines_table(result)
    if b is not None:
        console.print()
        console.print(b)
    console.print()
    console.print(spectrum_table(result))
    console.print()
    console.print(cosine_table(result))
    a = action_table(result)
    if a is not None:
        console.print()
        console.print(a)
        statement = result["action_sensitivity"].get("statement", "")
        style = "bold yellow" if result["action_sensitivity"].get("ignores_action") else "green"
        if result["action_sensitivity"].get("ignores_action") is None:
            style = "dim"
        console.print(Text(statement, style=style))
    m = memorisation_table(result)
    if m is not None:
        console.print()
        console.print(m)
    nd = result.get("near_duplicates")
    if nd:
        console.print(f"near-duplicate transitions (content Jaccard >= {nd.get('content_threshold')}, edit Jaccard >= "
                      f"{nd.get('edit_threshold')}): {fmt(nd.get('near_duplicates'))} of {fmt(nd.get('val_checked'))} "
                      f"validation pairs vs {fmt(nd.get('train_checked'))} training pairs "
                      f"({fmt(nd.get('exact_duplicates'))} token-identical); similar content only: "
                      f"{fmt(nd.get('similar_content'))}")
    trend = result.get("training_trend")
    if trend and trend.get("steps"):
        if "peak_step" in trend:
            console.print(f"probe KNN@5 across {trend['basis']}: peak {pct(trend['peak_knn_at_5'])} at step "
                          f"{trend['peak_step']}, last {pct(trend['last_knn_at_5'])} (gallery N={trend['gallery_size']})")
        else:
            console.print(f"probe KNN@5 trend: {trend.get('note', '')}")
    if result.get("geometry"):
        for table in geometry_tables(result["geometry"]):
            console.print()
            console.print(table)
    console.print()
    warnings = result.get("warnings") or []
    if warnings:
        console.print("[bold]Warnings[/]")
        for w in warnings:
            style = "bold yellow" if w.get("severity", "warning") == "warning" else "cyan"
            console.print(Text(f"  [{w.get('kind')}] ", style=style) + Text(w.get("message", "")))
    else:
        console.print("[green]no warnings[/]")
    timing = result.get("timing")
    if timing:
        console.print(f"[dim]{timing['total_s']:.1f} s in all: encoding {timing['encode_s']:.1f} s, nearest-neighbour "
                      f"search {timing['search_s']:.2f} s ({fmt(timing.get('encoded_pairs'))} pairs encoded)"
                      + (f"; saved {result['saved_to']}" if result.get("saved_to") else "") + "[/]")
