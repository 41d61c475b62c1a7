"""What a sweep reports: the ablation log (paper Appendix B) and the cross-seed matrix (paper Table 9).

Every number is read back from the runs' saved audits (``RUN/audits/<checkpoint>.json``, written by the
full audit of :mod:`wmkit.audit`); nothing is recomputed here but means, standard deviations and spreads.

- ablation log: one row per run × audited checkpoint;
- cross-seed matrix: per grid point and checkpoint, every seed's KNN@1/5/10, mean ± sd (sample sd,
  n − 1) and the max/min spread; a point whose KNN@5 spread exceeds the threshold is flagged (the
  paper's peak was a single-seed outlier with a 2–3× spread).

Outputs: rich tables, Markdown, CSV, JSON and a self-contained HTML page.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from html import escape
from pathlib import Path

from wmkit.audit.core import load_result, to_jsonable
from wmkit.sweep.plan import load_sweep, tier_of
from wmkit.sweep.run import audit_file

#: a grid point whose KNN@5 max/min over seeds exceeds this is flagged
DEFAULT_SPREAD_THRESHOLD = 2.0
KNN_KS = (1, 5, 10)
#: warning kinds that are memorisation evidence (audit and training log)
MEMORISATION_KINDS = ("memorisation", "near_duplicates", "knn_falling")
#: baseline columns taken from the audit when it has them (the copy and linear-edit baselines)
BASELINE_KEY = re.compile(r"^((copy|linear_edit)_knn_at_\d+|beats_copy_rate|linear_edit_beats_copy_rate)$")

#: (column, key in the log row, format) of the ablation log
ABLATION_COLUMNS = (
    ("run", "run", "s"), ("point", "point", "s"), ("tier", "tier", "s"), ("checkpoint", "checkpoint", "s"),
    ("steps", "steps", "d"), ("seed", "seed", "d"), ("pred cos", "cos", ".4f"), ("delta cos", "delta_cos", ".4f"),
    ("copy cos", "copy_cos", ".4f"), ("lift", "lift", "+.4f"), ("train-val KNN@5", "train_val_gap", "+.4f"),
    ("memorisation warnings", "memorisation_warnings", "s"), ("erank online", "erank_online", ".2f"),
    ("erank target", "erank_target", ".2f"), ("erank pred", "erank_pred", ".2f"),
    ("KNN@1", "knn_at_1", ".4f"), ("KNN@5", "knn_at_5", ".4f"), ("KNN@10", "knn_at_10", ".4f"),
    ("pred-target off-diag cos", "cross_off", ".4f"), ("gallery N", "gallery_size", "d"),
)


def _get(tree, *path):
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def baseline_values(result: dict) -> dict:
    """Flat baseline columns of an audit that has them: ``copy_knn_at_k`` / ``linear_edit_knn_at_k``
    (``{"1": …, "5": …}``) -> ``copy_knn_at_1`` …; ``beats_copy.rate`` -> ``beats_copy_rate``; the linear
    edit's ``linear_edit.beats_copy.rate`` -> ``linear_edit_beats_copy_rate``. Absent keys stay absent."""
    out = {}
    for name in ("copy", "linear_edit"):
        table = result.get(f"{name}_knn_at_k")
        if isinstance(table, dict):
            for k in KNN_KS:
                if table.get(str(k)) is not None:
                    out[f"{name}_knn_at_{k}"] = table[str(k)]
    rate = _get(result, "beats_copy", "rate")
    if rate is not None:
        out["beats_copy_rate"] = rate
    rate = _get(result, "linear_edit", "beats_copy", "rate")
    if rate is not None:
        out["linear_edit_beats_copy_rate"] = rate
    return out


def point_label(point: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in point.items()) or "base"


def ablation_rows(sweep_dir: Path, state: dict) -> list[dict]:
    """One row per run × audited checkpoint, from the saved audits (missing ones are skipped)."""
    plan = state["plan"]
    rows = []
    for run_id, info in state["runs"].items():
        run_dir = Path(sweep_dir) / info["dir"]
        for label in sorted(info.get("audits") or {}, key=_checkpoint_order):
            result = load_result(audit_file(run_dir, label))
            if result is None:
                continue
            warnings = result.get("warnings") or []
            fired = sorted({w["kind"] for w in warnings if w.get("severity", "warning") == "warning"
                            and any(k in w.get("kind", "") for k in MEMORISATION_KINDS)})
            row = {"run": run_id, "point": point_label(info["point"]), "point_index": info["point_index"],
                   "grid": info["point"], "tier": tier_of(info["steps"], plan.get("tier")), "checkpoint": label,
                   "checkpoint_name": result.get("checkpoint_name"), "steps": result.get("step"),
                   "seed": info["seed"], "train_val_gap": _get(result, "train_gap", "difference", "knn_at_5"),
                   "memorisation_warnings": ", ".join(fired) or "none", "verdict": result.get("verdict")}
            for key in ("cos", "delta_cos", "copy_cos", "lift", "erank_online", "erank_target", "erank_pred",
                        "knn_at_1", "knn_at_5", "knn_at_10", "cross_off", "gallery_size",
                        "random_knn_at_1", "random_knn_at_5", "random_knn_at_10"):
                row[key] = result.get(key)
            row.update(baseline_values(result))
            rows.append(row)
    return rows


def _checkpoint_order(label: str):
    return (1, 0) if label == "best" else (0, int(label.split("-")[1]))


def _spread(values: list[float]):
    lo, hi = min(values), max(values)
    if lo > 0:
        return hi / lo
    return None if hi == 0 else math.inf


def seed_matrix(rows: list[dict], threshold: float = DEFAULT_SPREAD_THRESHOLD) -> list[dict]:
    """Per grid point × checkpoint: each seed's KNN@k, mean, sd, max/min spread, and the flag."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["point_index"], row["checkpoint"]), []).append(row)
    out = []
    for (index, label), members in sorted(groups.items(), key=lambda kv: (kv[0][0], _checkpoint_order(kv[0][1]))):
        members = sorted(members, key=lambda r: r["seed"])
        entry = {"point_index": index, "point": members[0]["point"], "grid": members[0]["grid"],
                 "checkpoint": label, "seeds": [r["seed"] for r in members],
                 "steps": [r["steps"] for r in members]}
        for k in KNN_KS:
            values = [r[f"knn_at_{k}"] for r in members if r.get(f"knn_at_{k}") is not None]
            spread = _spread(values) if values else None
            entry[f"knn_at_{k}"] = {
                "values": values, "mean": statistics.fmean(values) if values else None,
                "sd": statistics.stdev(values) if len(values) >= 2 else None,
                "max": max(values) if values else None, "min": min(values) if values else None,
                "spread": spread}
        spread5 = entry["knn_at_5"]["spread"]
        entry["flagged"] = bool(len(entry["seeds"]) >= 2 and spread5 is not None and spread5 > threshold)
        entry["threshold"] = threshold
        out.append(entry)
    return out


def build_report(sweep_dir: Path, threshold: float = DEFAULT_SPREAD_THRESHOLD) -> dict:
    state = load_sweep(sweep_dir)
    rows = ablation_rows(sweep_dir, state)
    counts = {}
    for info in state["runs"].values():
        counts[info["state"]] = counts.get(info["state"], 0) + 1
    return {"sweep_dir": str(sweep_dir), "plan": state["plan"], "run_states": counts,
            "ablation_log": rows, "seed_matrix": seed_matrix(rows, threshold), "spread_threshold": threshold}


# ---------------------------------------------------------------------------------------------
# renderings
# ---------------------------------------------------------------------------------------------


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if spec == "s":
        return str(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _baseline_keys(rows: list[dict]) -> list[str]:
    return sorted({k for r in rows for k in r if BASELINE_KEY.match(k)})


def ablation_table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    extra = _baseline_keys(rows)
    header = [c[0] for c in ABLATION_COLUMNS] + extra
    body = [[_fmt(r.get(key), spec) for _, key, spec in ABLATION_COLUMNS] +
            [_fmt(r.get(k), ".4f" if isinstance(r.get(k), float) else "s") for k in extra] for r in rows]
    return header, body


def _mean_sd(cell: dict) -> str:
    if cell["mean"] is None:
        return "-"
    return f"{cell['mean']:.4f} ± {cell['sd']:.4f}" if cell["sd"] is not None else f"{cell['mean']:.4f}"


def matrix_table_rows(matrix: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["point", "checkpoint", "seeds"]
    for k in KNN_KS:
        header += [f"KNN@{k} per seed", f"KNN@{k} mean ± sd", f"KNN@{k} max/min"]
    header.append("flag")
    body = []
    for e in matrix:
        row = [e["point"], e["checkpoint"], ", ".join(map(str, e["seeds"]))]
        for k in KNN_KS:
            cell = e[f"knn_at_{k}"]
            row += [" / ".join(f"{v:.4f}" for v in cell["values"]), _mean_sd(cell), _fmt(cell["spread"], ".2f")]
        row.append(f"SPREAD > {e['threshold']:g}x" if e["flagged"] else "")
        body.append(row)
    return header, body


def rich_tables(report: dict) -> list:
    from rich.table import Table

    tables = []
    for title, (header, body) in (("ablation log (paper Appendix B)", ablation_table_rows(report["ablation_log"])),
                                  (f"cross-seed matrix (flag: KNN@5 max/min > {report['spread_threshold']:g})",
                                   matrix_table_rows(report["seed_matrix"]))):
        table = Table(title=title, title_justify="left")
        for col in header:
            table.add_column(col, overflow="fold")
        for row in body:
            table.add_row(*[f"[bold red]{c}[/]" if c.startswith("SPREAD") else c for c in row])
        tables.append(table)
    return tables


def markdown(report: dict) -> str:
    def md(header, body):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)

    return (f"# Sweep {report['sweep_dir']}\n\n## Ablation log\n\n{md(*ablation_table_rows(report['ablation_log']))}\n\n"
            f"## Cross-seed matrix\n\nFlag: KNN@5 max/min over seeds > {report['spread_threshold']:g}.\n\n"
            f"{md(*matrix_table_rows(report['seed_matrix']))}\n")


def ablation_csv(rows: list[dict]) -> str:
    keys = [key for _, key, _ in ABLATION_COLUMNS] + ["verdict", "checkpoint_name"] + _baseline_keys(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k) for k in keys})
    return buf.getvalue()


def matrix_csv(matrix: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["point", "checkpoint", "seed", "steps", *[f"knn_at_{k}" for k in KNN_KS]])
    for e in matrix:
        for i, seed in enumerate(e["seeds"]):
            writer.writerow([e["point"], e["checkpoint"], seed, e["steps"][i],
                             *[e[f"knn_at_{k}"]["values"][i] if i < len(e[f"knn_at_{k}"]["values"]) else ""
                               for k in KNN_KS]])
        for stat in ("mean", "sd", "spread"):
            writer.writerow([e["point"], e["checkpoint"], stat, "",
                             *["" if e[f"knn_at_{k}"][stat] is None else e[f"knn_at_{k}"][stat] for k in KNN_KS]])
    return buf.getvalue()


def html(report: dict, sweep_dir: Path) -> str:
    """The page: both tables, per-run probe curves, and KNN@5 vs step across seeds per grid point."""
    from wmkit.audit.memorisation import read_metrics_log
    from wmkit.audit.svg import line_chart

    state = load_sweep(sweep_dir)

    def table(header, body):
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><tr>{head}</tr>{rows}</table>"

    probes: dict[str, list[dict]] = {}
    for run_id, info in state["runs"].items():
        probes[run_id] = read_metrics_log(Path(sweep_dir) / info["dir"] / "metrics.jsonl").get("evals", [])
    points: dict[int, list[str]] = {}
    for run_id, info in state["runs"].items():
        points.setdefault(info["point_index"], []).append(run_id)
    audited = {}
    for row in report["ablation_log"]:
        if row["checkpoint"].startswith("step-"):
            audited.setdefault(row["run"], []).append((row["steps"], row["knn_at_5"]))
    across = []
    for index, members in sorted(points.items()):
        series = []
        for run_id in members:
            seed = state["runs"][run_id]["seed"]
            ev = probes[run_id]
            series.append({"name": f"probe seed {seed}", "x": [e["step"] for e in ev], "y": [e.get("knn_at_5") for e in ev]})
            pts = sorted(audited.get(run_id, []))
            if pts:
                series.append({"name": f"audit seed {seed}", "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                               "dash": True})
        label = point_label(state["runs"][members[0]]["point"])
        across.append(line_chart(series, title=f"KNN@5 vs step across seeds: {label}", xlabel="step",
                                 ylabel="KNN@5", markers=True, integer_x=True))
    per_run = []
    for run_id, ev in probes.items():
        xs = [e["step"] for e in ev]
        per_run.append(line_chart([{"name": "KNN@5", "x": xs, "y": [e.get("knn_at_5") for e in ev]},
                                   {"name": "delta cos", "x": xs, "y": [e.get("delta_cos") for e in ev]},
                                   {"name": "lift", "x": xs, "y": [e.get("lift") for e in ev]},
                                   {"name": "random @5", "x": xs, "y": [e.get("random_knn_at_5") for e in ev],
                                    "dash": True, "color": "#888"}],
                                  title=f"probe: {run_id}", xlabel="step", integer_x=True))
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}svg{margin:4px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>wmkit sweep</title><style>{style}</style>"
            f"</head><body><h1>Sweep {escape(str(sweep_dir))}</h1>"
            f"<h2>Ablation log</h2>{table(*ablation_table_rows(report['ablation_log']))}"
            f"<h2>Cross-seed matrix</h2><p>Flag: KNN@5 max/min over seeds &gt; {report['spread_threshold']:g}.</p>"
            f"{table(*matrix_table_rows(report['seed_matrix']))}"
            f"<h2>KNN@5 vs step across seeds</h2>{''.join(across)}"
            f"<h2>Per-run probe curves</h2>{''.join(per_run)}</body></html>")


def write_report(report: dict, sweep_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write ablation.md/.csv, seeds.csv, report.json and report.html; returns their paths."""
    from wmkit.checkpoint import write_json_atomic

    out_dir = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out_dir / "report.md", "ablation_csv": out_dir / "ablation.csv",
             "seeds_csv": out_dir / "seeds.csv", "json": out_dir / "report.json", "html": out_dir / "report.html"}
    files["markdown"].write_text(markdown(report), encoding="utf-8")
    files["ablation_csv"].write_text(ablation_csv(report["ablation_log"]), encoding="utf-8")
    files["seeds_csv"].write_text(matrix_csv(report["seed_matrix"]), encoding="utf-8")
    write_json_atomic(files["json"], to_jsonable(report))
    files["html"].write_text(html(report, sweep_dir), encoding="utf-8")
    return files
