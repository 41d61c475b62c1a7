"""A self-contained HTML page of an audit: tables and inline-SVG plots, no network, no JavaScript.

Plots: metrics over training steps (from the run's ``metrics.jsonl``), the KNN@k curve with its random
and shuffled-action curves, per-loop signal ratio and per-loop probe accuracy beside the
majority-class baseline.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Iterable

from wmkit.audit import memorisation
from wmkit.audit.report import fmt, pct
from wmkit.audit.svg import line_chart

MAX_POINTS = 1500
"""Training-step series are thinned to at most this many points per line."""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{font-size:18px;font-weight:bold;padding:10px 14px;border-radius:6px;margin:12px 0}
.v-healthy{background:#e6f4ea;color:#1e6b34}.v-warn{background:#fff4e0;color:#8a5300}.v-bad{background:#fde8e8;color:#a11}
table{border-collapse:collapse;margin:8px 0 4px 0;font-size:13px} th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
.caption{font-size:12px;color:#666;margin-bottom:10px} .warn{color:#8a5300} .info{color:#05668d}
.charts{display:flex;flex-wrap:wrap;gap:12px} .muted{color:#777;font-size:12px}
"""


def _table(headers: Iterable[str], rows: Iterable[Iterable], caption: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    cap = f'<div class="caption">{escape(caption)}</div>' if caption else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{cap}"


def _thin(xs: list, ys: list) -> tuple[list, list]:
    if len(xs) <= MAX_POINTS:
        return xs, ys
    stride = -(-len(xs) // MAX_POINTS)
    return xs[::stride] + xs[-1:], ys[::stride] + ys[-1:]


def training_charts(log: dict) -> list[str]:
    """Charts of the run's metrics.jsonl: training loss terms, and the validation probe over steps."""
    charts = []
    steps = log.get("steps", [])
    if steps:
        series = []
        for key in ("loss", "pred", "reg", "aux"):
            pts = [(r["step"], r[key]) for r in steps if isinstance(r.get(key), (int, float))]
            if pts:
                xs, ys = _thin([p[0] for p in pts], [p[1] for p in pts])
                series.append({"name": key, "x": xs, "y": ys})
        charts.append(line_chart(series, title="training loss terms", xlabel="step", ylabel="loss",
                                 integer_x=True))
    evals = log.get("evals", [])
    if evals:
        xs = [e["step"] for e in evals]

        def s(key, name=None, **kw):
            return {"name": name or key, "x": xs, "y": [e.get(key) for e in evals], **kw}

        n = evals[-1].get("gallery_size")
        charts.append(line_chart([s("knn_at_1", "KNN@1"), s("knn_at_5", "KNN@5"),
                                  s("copy_knn_at_1", "copy @1", dash=True, color="#c44"),
                                  s("random_knn_at_5", "random @5", dash=True, color="#888")],
                                 title=f"validation probe KNN (gallery N={n})", xlabel="step", ylabel="rate",
                                 integer_x=True))
        charts.append(line_chart([s("cos"), s("delta_cos", "delta cos"), s("lift"), s("copy_cos", "copy cos")],
                                 title="validation probe cosines", xlabel="step", integer_x=True))
        charts.append(line_chart([s("erank_online", "online"), s("erank_target", "target"), s("erank_pred", "pred")],
                                 title="validation probe effective rank (uncentred)", xlabel="step", ylabel="erank",
                                 integer_x=True))
    return charts


def result_charts(result: dict) -> list[str]:
    charts = []
    curve = result.get("knn_curve")
    if curve:
        series = [{"name": "prediction", "x": curve["k"], "y": curve["rate"]}]
        if curve.get("shuffled_action"):
            series.append({"name": "shuffled action", "x": curve["k"], "y": curve["shuffled_action"]})
        series.append({"name": "random k/N", "x": curve["k"], "y": curve["random"], "dash": True, "color": "#888"})
        charts.append(line_chart(series, title=f"KNN@k, gallery N={result.get('gallery_size')}", xlabel="k (log)",
                                 ylabel="hit rate", log_x=True, y_range=(0, None), markers=True))
    geo = result.get("geometry") or {}
    ratios = geo.get("signal_ratio") or []
    if ratios:
        loops = list(range(1, len(ratios) + 1))
        charts.append(line_chart([{"name": "‖Δz‖/‖z‖", "x": loops, "y": ratios}], title="signal ratio per loop",
                                 xlabel="loop", ylabel="‖z_after − z_before‖/‖z_before‖", y_range=(0, None),
                                 markers=True, integer_x=True))
    for name, probe in (geo.get("probes") or {}).items():
        before = probe.get("from_before") or []
        if not before:
            continue
        loops = [b["loop"] for b in before]
        series = [{"name": "from before", "x": loops, "y": [b["accuracy"] for b in before]}]
        if probe.get("from_delta"):
            series.append({"name": "from delta", "x": loops, "y": [d["accuracy"] for d in probe["from_delta"]]})
        series.append({"name": "majority", "x": loops, "y": [b["majority_baseline"] for b in before],
                       "dash": True, "color": "#888"})
        charts.append(line_chart(series, title=f"probe accuracy per loop: {name}", xlabel="loop", ylabel="accuracy",
                                 y_range=(0, 1), markers=True, integer_x=True))
    return charts


def _verdict_class(verdict: str) -> str:
    if verdict == "healthy":
        return "v-healthy"
    if verdict in ("memorising", "ignores action"):
        return "v-warn"
    return "v-bad"


def render_html(result: dict, log: dict | None = None) -> str:
    """The HTML page of ``result`` (and of the run's parsed metrics log, if given) as a string."""
    n = result.get("gallery_size")
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>wmkit audit: "
           f"{escape(str(result.get('checkpoint')))}</title><style>{_CSS}</style></head><body>",
           f"<h1>wmkit audit</h1><div class=\"muted\">{escape(str(result.get('checkpoint')))} · step "
           f"{escape(fmt(result.get('step')))} · domain {escape(str(result.get('domain')))} · vocab "
           f"{escape(str(result.get('vocab_version')))} · {escape(str(result.get('created', '')))}</div>",
           f"<div class=\"verdict {_verdict_class(result.get('verdict', ''))}\">verdict: "
           f"{escape(str(result.get('verdict')))}</div>",
           "<ul>" + "".join(f"<li>{escape(r)}</li>" for r in result.get("reasons", [])) + "</ul>",
           f"<p>Data: {escape(str(result.get('data_source')))}: {escape(fmt(n))} of "
           f"{escape(fmt(result.get('val_rows_available')))} validation pairs the training never saw.</p>"]

    out.append("<h2>Discriminability</h2>")
    shuffled = result.get("action_sensitivity") or {}
    rows = []
    copy, online = result.get("copy_knn_at_k") or {}, result.get("online_copy_knn_at_k") or {}
    linear = result.get("linear_edit_knn_at_k") or {}
    for k in (1, 5, 10, 50):
        v, r, c = result.get(f"knn_at_{k}"), result.get(f"random_knn_at_{k}"), copy.get(str(k))
        rows.append([f"KNN@{k}", pct(v), pct(c), f"{v / c:.2f}x" if v is not None and c else "-",
                     pct(linear.get(str(k))), pct(online.get(str(k))), pct(r),
                     f"{v / r:.1f}x" if v is not None and r else "-", f"N={fmt(n)}", pct(shuffled.get(f"knn_at_{k}"))])
    out.append(_table(["k", "model", "copy", "model / copy", "linear edit", "online copy", "random k/N", "x random",
                       "gallery", "shuffled action"], rows,
                      "query: prediction; gallery: every target(after) of the N audited pairs; hit: own target in top k. "
                      "copy: target(before) as the query (nothing changes); online copy: online(before); linear edit: "
                      "ridge from the tokens the edit removed and added, fit on training pairs"))
    beats = result.get("beats_copy") or {}
    if beats:
        dg, drift = result.get("distractor_gallery") or {}, result.get("target_drift") or {}
        lin = result.get("linear_edit") or {}
        rows = [["beats copy", f"{pct(beats.get('rate'))} [{pct(beats.get('low'))}, {pct(beats.get('high'))}]"],
                ["linear edit beats copy", pct((lin.get("beats_copy") or {}).get("rate"))],
                ["model closer than linear", pct(lin.get("model_closer_rate"))],
                ["nearest = own after (distractor gallery)", pct(dg.get("nearest_own_after"))],
                ["nearest = own before (distractor gallery)", pct(dg.get("nearest_own_before"))],
                ["target drift: mean cos to the initial target", fmt(drift.get("mean_cos_to_initial"))]]
        same = result.get("identical_states") or {}
        if same:
            found = same.get("knn_at_1") or {}
            rows += [[f"KNN@1, identical after states found: {name}", pct(found.get(key))]
                     for name, key in (("model", "model"), ("copy", "copy"), ("linear edit", "linear_edit"))]
            rows.append(["KNN@1 ceiling (identical after states tie)", pct(same.get("ceiling_knn_at_1"))])
        out.append(_table(["measure", "value"], rows, "beats copy: pairs where cos(pred, target(after)) > "
                          "cos(target(before), target(after)), 95% Wilson interval"))
    centred, std, self_cos = result.get("erank_centred", {}), result.get("std_l2", {}), result.get("offdiag_self_cos", {})
    rows = []
    for name, key, label in (("online", "erank_online", "online(before)"), ("target", "erank_target", "target(after)"),
                             ("pred", "erank_pred", "predictions")):
        c = centred.get(name, {})
        rows.append([label, fmt(result.get(key), 2), fmt(c.get("erank"), 2), fmt(c.get("normalised"), 3),
                     fmt(std.get(name)), fmt(self_cos.get(name))])
    out.append(_table(["embeddings", "erank uncentred", "erank centred", "centred / min(N-1,D)", "std of L2 rows",
                       "off-diag self cos"], rows,
                      f"uncentred: exp H(s/Σs) of L2-normalised rows (reference §5); centred: exp H(S²/ΣS²) "
                      f"(reference §7); std of L2 rows ≈ {fmt(result.get('std_l2_spread'))} when spread, 0 collapsed"))
    names = result.get("metric_names", {})
    rows = [[key, fmt(result.get(key)), names.get(key, "")] for key in
            ("cross_diag", "cross_off", "gap", "cos", "delta_cos", "copy_cos", "copy_cos_paper", "lift", "lift_paper")]
    out.append(_table(["metric", "value", "definition"], rows))

    charts = result_charts(result)
    if charts:
        out.append("<h2>Plots</h2><div class=\"charts\">" + "".join(charts) + "</div>")

    a = result.get("action_sensitivity")
    if a:
        out.append("<h2>Action sensitivity</h2>")
        rows = [[f"KNN@{k}", pct(result.get(f"knn_at_{k}")), pct(a.get(f"knn_at_{k}"))] for k in (1, 5, 10, 50)]
        rows += [[key, fmt(result.get(key)), fmt(a.get(key))] for key in ("cos", "delta_cos")]
        out.append(_table(["metric", "true action", "another sample's action"], rows))
        out.append(f"<p><b>{escape(a.get('statement', ''))}</b></p>")

    gap = result.get("train_gap")
    if gap:
        out.append("<h2>Memorisation</h2>")
        rows = [[key, fmt(gap["train"][key]), fmt(gap["val"][key]), fmt(gap["difference"][key])] for key in gap["train"]]
        out.append(_table(["metric", "train sample", "validation", "difference"], rows,
                          f"equal galleries of N={gap.get('sample_size')}"))
    nd = result.get("near_duplicates")
    if nd:
        out.append(f"<p>Near-duplicate transitions (content 5-gram Jaccard ≥ {nd.get('content_threshold')} and edit "
                   f"Jaccard ≥ {nd.get('edit_threshold')}): {fmt(nd.get('near_duplicates'))} of "
                   f"{fmt(nd.get('val_checked'))} validation pairs ({fmt(nd.get('exact_duplicates'))} token-identical), "
                   f"against {fmt(nd.get('train_checked'))} training pairs; similar content only: "
                   f"{fmt(nd.get('similar_content'))}.</p>")

    warnings = result.get("warnings") or []
    out.append("<h2>Warnings</h2>")
    if warnings:
        out.append("<ul>" + "".join(f"<li class=\"{'warn' if w.get('severity', 'warning') == 'warning' else 'info'}\">"
                                   f"<b>{escape(str(w.get('kind')))}</b>: {escape(str(w.get('message')))}</li>"
                                   for w in warnings) + "</ul>")
    else:
        out.append("<p>none</p>")

    geo = result.get("geometry")
    if geo:
        out.append("<h2>Geometry (online encoder)</h2>")
        ratios = geo.get("signal_ratio") or []
        straight = geo.get("loop_straightness") or []
        dprobe = geo.get("delta_probe") or []
        rows = [[i + 1, fmt(r), fmt(dprobe[i] if i < len(dprobe) else None),
                 fmt(straight[i - 1] if 1 <= i <= len(straight) else None)] for i, r in enumerate(ratios)]
        out.append(_table(["loop", "‖Δz‖/‖z‖", "linear delta-probe cos", "loop straightness"], rows))
        traj = geo.get("trajectories", {})
        share = geo.get("top_singular_share", {})
        rows = [["erank of states (centred)", fmt(geo.get("erank_states", {}).get("erank"), 2)],
                ["erank of deltas (centred)", fmt(geo.get("erank_deltas", {}).get("erank"), 2)],
                ["top singular share, online(before)", pct(share.get("online"))],
                ["top singular share, target(before)", pct(share.get("target"))],
                ["consecutive delta cos (trajectories)", fmt(traj.get("consecutive_delta_cos"))],
                ["straightness, fraction κ<1 (trajectories)", fmt(traj.get("straightness"))],
                ["trajectory pairs", fmt(traj.get("pairs"))]]
        out.append(_table(["quantity", "value"], rows))
        for name, probe in (geo.get("probes") or {}).items():
            if probe.get("skipped"):
                out.append(f"<p>probe {escape(name)}: {escape(probe['skipped'])}</p>")
                continue
            delta = probe.get("from_delta") or [{}] * len(probe.get("from_before", []))
            rows = [[b["loop"], pct(b["accuracy"]), pct(d.get("accuracy")), pct(b["majority_baseline"]), b["n_test"]]
                    for b, d in zip(probe.get("from_before", []), delta)]
            out.append(f"<h3>probe: {escape(name)}</h3>")
            out.append(_table(["loop", "from before", "from delta", "majority baseline", "test rows"], rows,
                              "class shares: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in
                                                          (probe.get("class_shares") or {}).items())))

    if log is not None and (log.get("steps") or log.get("evals")):
        out.append("<h2>Training run</h2><div class=\"charts\">" + "".join(training_charts(log)) + "</div>")
    timing = result.get("timing")
    if timing:
        out.append(f"<p class=\"muted\">{timing['total_s']:.1f} s: encoding {timing['encode_s']:.1f} s, "
                   f"nearest-neighbour search {timing['search_s']:.2f} s. wmkit {escape(str(result.get('wmkit_version')))}.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html(result: dict, path: str | Path, metrics_jsonl: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of ``result`` to ``path``.

    ``metrics_jsonl`` defaults to ``metrics.jsonl`` of the result's run directory (skipped if absent).
    """
    if metrics_jsonl is None and result.get("run_dir"):
        metrics_jsonl = Path(result["run_dir"]) / "metrics.jsonl"
    log = memorisation.read_metrics_log(metrics_jsonl) if metrics_jsonl is not None else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result, log), encoding="utf-8")
    return path
