"""Rich rendering of a ``wmkit bench retrieval`` result (the shape of the paper's Tables 7 and 8).

- header: checkpoint, data, sizes, the held-out check (``overlap with training rows: 0``), the
  action vector and the wmkit edit-embedding formula, notes;
- quality table (Table 8 shape): one row per criterion, one column per model, cells
  ``MRR@10 / R@1 / R@5``, beside the share of the gallery that is relevant;
- size and latency table (Table 7 shape): parameters, tokens per side, batch-1 one-thread CPU
  milliseconds on real queries and at full length, with by_joint quality beside them;
- the speed ratios, one line each ("wmkit 8.1 ms vs minilm 318 ms: 1/39").
"""

from __future__ import annotations

from typing import Any

from wmkit.data.split import EVAL_SPLIT_LABELS


def _params(n: Any) -> str:
    if n is None:
        return "—"
    n = int(n)
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M" if n < 100_000_000 else f"{n / 1e6:.0f}M"
    if n >= 1_000:
        return f"{n / 1e3:.0f}K"
    return str(n)


def _ms(x: Any) -> str:
    if x is None:
        return "—"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _f3(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}"


def _tokens(entry: dict) -> str:
    med = entry.get("tokens_median")
    limit = entry.get("max_tokens")
    if entry.get("kind") == "lexical":
        return "whole file"
    if med:
        return f"{med[0]:.0f} / {med[1]:.0f} (≤{limit})"
    return f"{limit}" if limit else "—"


def render_retrieval(result: dict, console=None) -> None:
    """Print a :func:`wmkit.bench.retrieval.run_retrieval_bench` result."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    models: dict = result.get("models", {})
    title = f"edit retrieval: {result.get('checkpoint')} (step {result.get('step')}, domain {result.get('domain')}"
    title += f", recipe {result['recipe_name']})" if result.get("recipe_name") else ")"
    console.print(f"[bold]{title}[/]")

    if not result.get("latency_only"):
        split = result.get("split_check", {})
        req = result.get("requested", {})
        train_src = split.get("training_source")
        of = f" of {train_src}" if train_src and train_src != result.get("data_source") else ""
        pool = EVAL_SPLIT_LABELS.get(result.get("split") or "val", "the validation split")
        console.print(f"  data: {result.get('data_source')} — {pool}: {split.get('validation_rows')} rows; "
                      f"checked against the {split.get('training_rows')} training rows{of}")
        console.print(f"  {result.get('queries')} queries × {result.get('gallery')} gallery, disjoint, held out "
                      f"(asked {req.get('queries')} × {req.get('gallery')}; seed {result.get('seed')})")
        console.print(f"  overlap with training rows: {split.get('overlap_with_training_rows')}  "
                      f"[dim](query–gallery overlap {split.get('query_gallery_overlap')}; "
                      f"{split.get('content_duplicates_of_training')} pairs have exactly a training pair's tokens)[/]")
        acts = result.get("actions", {})
        console.print(f"  relevance: by_edit_type, by_joint labels; cos@0.9 / cos@0.95 on {acts.get('label')} actions "
                      f"[dim]({', '.join(acts.get('names', []))})[/]")
    console.print(f"  wmkit edit embedding: {result.get('embedding_formula')} ({result.get('embedding')}); "
                  f"{result.get('sequence_length')} tokens per state")
    for note in result.get("notes", []):
        console.print(f"  [yellow]note:[/] {note}")

    names = [n for n, m in models.items() if m.get("criteria")]
    if names and not result.get("latency_only"):
        quality = Table(title="Edit retrieval (relevance judged over the top 10)")
        quality.add_column("criterion")
        quality.add_column("metric")
        for n in names:
            quality.add_column(n, justify="right")
        for crit, facts in result.get("criteria", {}).items():
            for k, (metric, label) in enumerate((("mrr", "MRR@10"), ("r_at_1", "R@1"), ("r_at_5", "R@5"))):
                cells = []
                for n in names:
                    c = models[n]["criteria"].get(crit)
                    cells.append("—" if c is None else f"{c[metric]:.3f}")
                first = f"{crit} ({facts['relevant_share']:.0%} relevant)" if k == 0 else ""
                quality.add_row(first, label, *cells, end_section=k == 2)
        console.print(quality)

    lat = result.get("latency", {})
    table = Table(title=f"Size and CPU latency ({lat.get('threads', 1)} thread, batch {lat.get('batch', 1)}, both sides, "
                        f"median ms)")
    for col in ("model", "params", "tokens / side", "queries", "full length", "MRR by_joint"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for n, m in models.items():
        joint = (m.get("criteria") or {}).get("by_joint") or {}
        real = m.get("cpu_ms") if m.get("latency_inputs") == "real queries" else None
        table.add_row(n, _params(m.get("params")), _tokens(m), _ms(real), _ms(m.get("cpu_ms_full")), _f3(joint.get("mrr")))
    console.print(table)
    same = [f"{n} {m['identical_inputs']:.1%}" for n, m in models.items() if m.get("identical_inputs") is not None]
    if same:
        console.print(f"  [dim]pairs whose two sides reach the model identical (edit beyond the cut, defect D6): "
                      f"{', '.join(same)}[/]")
    tok = [f"{n} {_ms(m['tokenize_ms'])}" for n, m in models.items() if m.get("tokenize_ms") is not None]
    if tok:
        console.print(f"  [dim]tokenizing both sides (not in the latency), median ms: {', '.join(tok)}[/]")

    for r in result.get("speed_ratios", []):
        verdict = ""
        if r.get("required_speedup"):
            ok = "[green]pass[/]" if r["passes"] else "[red]FAIL[/]"
            verdict = f" — required ≤ 1/{r['required_speedup']}: {ok}"
        console.print(f"  wmkit {_ms(r['wmkit_ms'])} ms vs {r['model']} {_ms(r['model_ms'])} ms: {r['ratio']} "
                      f"[dim]({r['basis']}: {r.get('wmkit_tokens')} vs {r.get('model_tokens')} tokens per side)[/]"
                      f"{verdict}")
    if result.get("seconds") is not None:
        console.print(f"[dim]{result['seconds']:.1f} s in all[/]")


__all__ = ["render_retrieval"]
