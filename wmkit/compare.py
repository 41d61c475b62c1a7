"""``wmkit compare RUN_A RUN_B ...``: several audits side by side in one table.

Each run's saved audit (``RUN_DIR/audit.json``, written by ``wmkit audit``) is used when it is of the
checkpoint the run resolves to now (best, else latest) and of the asked gallery size; otherwise the
audit is run (and saved). A column per run, a row per metric; KNN rows carry the gallery size so
numbers over different galleries are never compared silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich.table import Table

from wmkit.audit.core import FULL_VAL_SIZE, audit_path, load_result, run_audit
from wmkit.audit.report import fmt, pct

#: (label, key path, formatter) rows of the comparison table
ROWS = (
    ("checkpoint", ("checkpoint_name",), str),
    ("step", ("step",), fmt),
    ("verdict", ("verdict",), str),
    ("gallery N", ("gallery_size",), fmt),
    ("KNN@1", ("knn_at_1",), pct),
    ("KNN@5", ("knn_at_5",), pct),
    ("KNN@10", ("knn_at_10",), pct),
    ("KNN@50", ("knn_at_50",), pct),
    ("random KNN@5", ("random_knn_at_5",), pct),
    ("copy KNN@1", ("copy_knn_at_k", "1"), pct),
    ("copy KNN@5", ("copy_knn_at_k", "5"), pct),
    ("online copy KNN@1", ("online_copy_knn_at_k", "1"), pct),
    ("linear edit KNN@1", ("linear_edit_knn_at_k", "1"), pct),
    ("KNN@1, identical found", ("identical_states", "knn_at_1", "model"), pct),
    ("KNN@1 ceiling", ("identical_states", "ceiling_knn_at_1"), pct),
    ("beats copy", ("beats_copy", "rate"), pct),
    ("target drift (cos to initial)", ("target_drift", "mean_cos_to_initial"), fmt),
    ("erank online", ("erank_online",), lambda v: fmt(v, 2)),
    ("erank target", ("erank_target",), lambda v: fmt(v, 2)),
    ("erank pred", ("erank_pred",), lambda v: fmt(v, 2)),
    ("centred erank online / min(N-1,D)", ("erank_centred", "online", "normalised"), lambda v: fmt(v, 3)),
    ("cross diag", ("cross_diag",), fmt),
    ("cross off", ("cross_off",), fmt),
    ("gap", ("gap",), fmt),
    ("cos", ("cos",), fmt),
    ("delta cos", ("delta_cos",), fmt),
    ("copy_cos (reference)", ("copy_cos",), fmt),
    ("lift", ("lift",), fmt),
    ("KNN@5, shuffled action", ("action_sensitivity", "knn_at_5"), pct),
    ("train - val KNN@5", ("train_gap", "difference", "knn_at_5"), pct),
    ("warnings", ("warnings",), lambda v: str(len(v or []))),
)


def _get(result: dict, path: tuple):
    value = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _run_dir(path: Path) -> Path | None:
    from wmkit.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def saved_audit(path: str | Path, *, gallery_size: int | None = None) -> dict | None:
    """The run's saved audit if it is of the checkpoint ``path`` resolves to now (and of
    ``gallery_size`` when given), else ``None``."""
    from wmkit.checkpoint import resolve_checkpoint

    path = Path(path)
    ckpt = resolve_checkpoint(path)
    run_dir = _run_dir(path)
    if run_dir is None:
        return None
    saved = load_result(audit_path(run_dir))
    if saved is None or Path(saved.get("checkpoint", "")).resolve() != ckpt.resolve():
        return None
    if gallery_size is not None and saved.get("gallery_size") != gallery_size:
        return None
    return saved


def compare_results(paths: Sequence[str | Path], *, full_val: bool = True, val_size: int | None = None,
                    data: str | None = None, rerun: bool = False, progress: bool = True) -> list[tuple[str, dict]]:
    """``(name, audit result)`` per path: the saved audit when usable, else a fresh one.

    A saved audit is reused when it is of the run's current checkpoint and, if ``val_size`` is given,
    of that gallery size; with ``full_val`` (the default) a saved audit of a smaller gallery than
    ``min(5000, validation rows)`` is not reused.
    """
    out = []
    for p in paths:
        p = Path(p)
        saved = None if rerun else saved_audit(p, gallery_size=val_size)
        if saved is not None and full_val and val_size is None:
            want = min(FULL_VAL_SIZE, saved.get("val_rows_available") or FULL_VAL_SIZE)
            if saved.get("gallery_size") != want:
                saved = None
        result = saved if saved is not None else run_audit(p, full_val=full_val, val_size=val_size, geometry=False,
                                                           data=data, progress=progress)
        out.append((p.name or str(p), result))
    return out


def comparison_table(named: Sequence[tuple[str, dict]]) -> Table:
    """The side-by-side table of ``(name, result)`` pairs."""
    table = Table(title="wmkit compare", title_justify="left", show_edge=False)
    table.add_column("metric")
    for name, _ in named:
        table.add_column(name, justify="right")
    for label, path, formatter in ROWS:
        table.add_row(label, *[formatter(_get(r, path)) if _get(r, path) is not None or label == "warnings" else "-"
                               for _, r in named])
    sizes = {r.get("gallery_size") for _, r in named}
    if len(sizes) > 1:
        table.caption = (f"[bold yellow]gallery sizes differ ({', '.join(str(s) for s in sorted(sizes, key=str))}): "
                         f"KNN numbers are not comparable; re-run with the same --val-size or --full-val[/]")
    return table


def compare_runs(paths: Sequence[str | Path], **kwargs) -> Table:
    """Audit (or read the saved audits of) ``paths`` and return the comparison table.

    Keyword arguments go to :func:`compare_results` (``full_val``, ``val_size``, ``data``, ``rerun``,
    ``progress``).
    """
    return comparison_table(compare_results(paths, **kwargs))


# ---------------------------------------------------------------------------------------------
# machine-readable output and grouping by seed
# ---------------------------------------------------------------------------------------------


def _run_recipe(result: dict) -> dict:
    """The resolved recipe of the run an audit is of (its config.json), or ``{}``."""
    import json

    run_dir = result.get("run_dir")
    try:
        return json.loads((Path(run_dir) / "config.json").read_text()).get("recipe", {}) if run_dir else {}
    except (OSError, ValueError):
        return {}


def seed_groups(named: Sequence[tuple[str, dict]]) -> list[list[tuple[str, dict, int | None]]]:
    """Runs whose recipes differ only in ``meta.seed``, grouped (first-seen order), each sorted by seed."""
    import json

    groups: dict[str, list] = {}
    for name, result in named:
        recipe = _run_recipe(result)
        seed = (recipe.get("meta") or {}).get("seed")
        rest = {**recipe, "meta": {k: v for k, v in (recipe.get("meta") or {}).items() if k != "seed"}}
        key = json.dumps(rest, sort_keys=True) if recipe else f"unknown:{name}"
        groups.setdefault(key, []).append((name, result, seed))
    return [sorted(members, key=lambda m: (m[2] is None, m[2])) for members in groups.values()]


def comparison_records(named: Sequence[tuple[str, dict]]) -> list[dict]:
    """One flat record per run: name, seed, seed group, then every metric of :data:`ROWS` (raw values)."""
    out = []
    for group_index, members in enumerate(seed_groups(named)):
        for name, result, seed in members:
            record = {"run": name, "seed": seed, "seed_group": group_index}
            for label, path, _ in ROWS:
                value = _get(result, path)
                record[label] = len(value or []) if label == "warnings" else value
            out.append(record)
    return out


def records_csv(records: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    if records:
        writer = csv.DictWriter(buf, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return buf.getvalue()


def _numeric(values) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def seed_grouped_table(named: Sequence[tuple[str, dict]]) -> Table:
    """The comparison table with runs grouped by seed, and a mean ± sd column after each group of 2+."""
    import statistics

    table = Table(title="wmkit compare (grouped by seed)", title_justify="left", show_edge=False)
    table.add_column("metric")
    columns = []
    for index, members in enumerate(seed_groups(named)):
        for name, result, seed in members:
            table.add_column(f"{name} (seed {seed})", justify="right")
            columns.append(("run", result))
        if len(members) > 1:
            table.add_column(f"group {index + 1}: mean ± sd", justify="right", style="bold")
            columns.append(("stat", [r for _, r, _ in members]))
    for label, path, formatter in ROWS:
        cells = []
        for kind, item in columns:
            if kind == "run":
                value = _get(item, path)
                cells.append(formatter(value) if value is not None or label == "warnings" else "-")
                continue
            values = _numeric(_get(r, path) for r in item)
            if len(values) < 2 or label in ("step", "gallery N"):
                cells.append("")
            else:
                mean, sd = statistics.fmean(values), statistics.stdev(values)
                cells.append(f"{formatter(mean)} ± {formatter(sd)}" if formatter is pct or formatter is fmt
                             else f"{mean:.3f} ± {sd:.3f}")
        table.add_row(label, *cells)
    return table
