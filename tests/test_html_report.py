"""The self-contained HTML audit page and its inline-SVG charts."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from wmkit.audit import html as audit_html
from wmkit.audit.svg import line_chart, log_ticks, nice_ticks

SVG_NS = "{http://www.w3.org/2000/svg}"


def sample_result(**kw) -> dict:
    n = 4104
    r = {"format": "wmkit-audit/1", "checkpoint": "runs/x/checkpoints/step-900", "step": 900, "domain": "code",
         "vocab_version": "code-v1", "data_source": "jsonl:data", "gallery_size": n, "val_rows_available": n,
         "embedding_dim": 128, "verdict": "collapsed predictor", "verdicts": ["collapsed predictor"],
         "reasons": ["collapsed predictor: erank of predictions 2.00 < 0.1 x erank of targets 40.00"],
         "erank_online": 50.1, "erank_target": 40.0, "erank_pred": 2.0,
         "erank_centred": {k: {"erank": 10.0, "normalised": 0.08} for k in ("online", "target", "pred")},
         "std_l2": {"online": 0.05, "target": 0.05, "pred": 0.01}, "std_l2_spread": 0.0884,
         "offdiag_self_cos": {"online": 0.2, "target": 0.3},
         "cross_diag": 0.5, "cross_off": 0.4, "gap": 0.1, "cos": 0.5, "delta_cos": 0.3, "copy_cos": 0.2,
         "copy_cos_paper": 0.9, "lift": 0.3, "lift_paper": -0.4,
         "knn_curve": {"k": [1, 2, 5, 10, 100, 1000], "rate": [0.01, 0.02, 0.05, 0.1, 0.4, 0.8],
                       "random": [k / n for k in (1, 2, 5, 10, 100, 1000)],
                       "shuffled_action": [0.005, 0.01, 0.03, 0.07, 0.3, 0.7]},
         "action_sensitivity": {"knn_at_1": 0.005, "knn_at_5": 0.03, "knn_at_10": 0.07, "knn_at_50": 0.2,
                                "cos": 0.45, "delta_cos": 0.2, "statement": "the predictor uses the action"},
         "warnings": [{"kind": "training:loss_explosion", "severity": "warning", "message": "x <script>alert(1)</script>"}],
         "geometry": {"signal_ratio": [0.12, 0.05, 0.03], "delta_probe": [0.3, 0.31, 0.32], "loop_straightness": [0.2],
                      "erank_states": {"erank": 5.1, "normalised": 0.04}, "erank_deltas": {"erank": 4.9, "normalised": 0.04},
                      "top_singular_share": {"online": 0.64, "target": 0.85},
                      "trajectories": {"pairs": 10, "consecutive_delta_cos": -0.05, "straightness": 0.13},
                      "probes": {"edit_type": {"classes": ["ADD", "DELETE", "MODIFY"], "class_shares": {"MODIFY": 0.988},
                                               "from_before": [{"loop": i, "accuracy": 0.99, "majority_baseline": 0.988,
                                                                "n_test": 800} for i in (1, 2, 3)]}}},
         "timing": {"total_s": 12.0, "encode_s": 10.0, "search_s": 0.5}}
    for k, base in ((1, 0.01), (5, 0.05), (10, 0.1), (50, 0.3)):
        r[f"knn_at_{k}"], r[f"random_knn_at_{k}"] = base, k / n
    r.update(kw)
    return r


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg.*?</svg>", page, re.S)]


def test_page_is_self_contained_and_well_formed(tmp_path):
    page = audit_html.write_html(sample_result(), tmp_path / "audit.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page  # the hostile warning text is escaped, and no JS is shipped
    assert "&lt;script&gt;" in page
    for pattern in (r'src\s*=\s*"http', r'href\s*=\s*"http', r"@import", r"url\(\s*['\"]?http", r"<link"):
        assert not re.search(pattern, page), pattern
    charts = svgs(page)
    # KNN@k curve, per-loop signal ratio, one probe chart
    assert len(charts) == 3
    titles = [c.find(f"{SVG_NS}text").text for c in charts]
    assert titles == ["KNN@k, gallery N=4104", "signal ratio per loop", "probe accuracy per loop: edit_type"]


def test_tables_show_gallery_baselines_and_verdict(tmp_path):
    page = audit_html.render_html(sample_result())
    assert "verdict: collapsed predictor" in page and "v-bad" in page
    # every KNN row carries the gallery size and the random baseline k/N
    for k in (1, 5, 10, 50):
        row = re.search(rf"<tr><td>KNN@{k}</td>(.*?)</tr>", page).group(1)
        assert "N=4,104" in row and f"{100 * k / 4104:.2f}%" in row
    # probe accuracy next to its majority baseline (defect D12, docs/reference.md#d12)
    assert "99.00%" in page and "98.80%" in page and "MODIFY 98.8%" in page


def test_training_charts_from_metrics_jsonl(tmp_path):
    log = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "loss": 1.0 / s, "pred": 0.5 / s} for s in range(1, 31)]
    lines += [{"event": "eval", "step": s, "knn_at_1": 0.1, "knn_at_5": 0.2 + s / 1000, "random_knn_at_5": 5 / 128,
               "cos": 0.5, "delta_cos": 0.4, "lift": 0.1, "copy_cos": 0.4, "erank_online": 10, "erank_target": 9,
               "erank_pred": 3, "gallery_size": 128} for s in (10, 20, 30)]
    lines.append({"event": "warning", "step": 5, "kind": "memorisation", "message": "m"})
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    page = audit_html.write_html(sample_result(), tmp_path / "a.html", metrics_jsonl=log).read_text()
    charts = {c.find(f"{SVG_NS}text").text: c for c in svgs(page)}
    loss = charts["training loss terms"]
    polylines = loss.findall(f"{SVG_NS}polyline")
    assert len(polylines) == 2  # loss and pred
    assert len(polylines[0].get("points").split()) == 30
    assert "validation probe KNN (gallery N=128)" in charts
    # a missing log just leaves the section out
    page = audit_html.write_html(sample_result(), tmp_path / "b.html", metrics_jsonl=tmp_path / "none.jsonl").read_text()
    assert "training loss terms" not in page


def test_long_series_are_thinned():
    xs = list(range(10_000))
    tx, ty = audit_html._thin(xs, xs)
    assert len(tx) <= audit_html.MAX_POINTS + 1 and tx[0] == 0 and tx[-1] == 9999


def test_line_chart_maps_data_to_plot_box():
    svg = ET.fromstring(line_chart([{"name": "a", "x": [0, 10], "y": [0, 1]}], title="t", width=560, height=300,
                                   y_range=(0, 1)))
    pts = [tuple(map(float, p.split(","))) for p in svg.find(f"{SVG_NS}polyline").get("points").split()]
    # left=62, right=150, top=30, bottom=44 -> plot box x in [62, 410], y in [30, 256]
    assert pts[0] == pytest.approx((62.0, 256.0)) and pts[1] == pytest.approx((410.0, 30.0))


def test_line_chart_breaks_on_missing_values_and_handles_empty():
    svg = ET.fromstring(line_chart([{"name": "a", "x": [1, 2, 3, 4], "y": [1.0, None, 2.0, 3.0]}], title="t"))
    assert len(svg.findall(f"{SVG_NS}polyline")) == 2
    empty = line_chart([{"name": "a", "x": [], "y": []}], title="nothing")
    assert "no data" in empty and ET.fromstring(empty) is not None


def test_tick_helpers():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    assert log_ticks(1, 1000) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
