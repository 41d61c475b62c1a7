"""``wmkit bench all``: every speed figure of issue 11 measured in one run, each beside its goal.

Runs, in order: the matmul ceilings (fp32, bf16), training at (32, 128) and (128, 512) in fp32 and
in bf16 (bf16 only where this CPU's bf16 ceiling beats its fp32 one, unless asked), data
preparation cold and warm (of the commits folder passed as ``prepare_data``), the full audit of N = 5,000 pairs at
512 tokens, and the batch-1 edit-embedding latency against the RoBERTa-base and MiniLM shapes.
Every row is a :class:`Figure`: its value, its goal, and pass / FAIL (or "—" where there is no goal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from wmkit.errors import DataError

#: issue 11's training goals: share of the matmul ceiling at each (batch, tokens), fp32
TRAIN_GOALS = {(32, 128): 0.60, (128, 512): 0.50}
#: peak memory goal at (128, 512), GB
MEMORY_GOAL_GB = 8.0
#: sections ``--skip`` may name
SECTIONS = ("train", "bf16", "prepare", "audit", "latency")


@dataclass
class Figure:
    """One measured figure: ``value`` formatted, ``goal`` as words, ``passed`` None where there is no goal."""

    section: str
    name: str
    value: str
    goal: str = "—"
    passed: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return "—" if self.passed is None else ("pass" if self.passed else "FAIL")


def _training(figures: list[Figure], precision: str, steps: int) -> None:
    from wmkit.bench.speed import run

    for r in run(configs=tuple(TRAIN_GOALS), steps=steps, precision=precision):
        shape = f"{r['batch']}x{r['tokens']}"
        share = r["flops_per_s"] / r["ceiling_flops_per_s"]
        goal = TRAIN_GOALS[(r["batch"], r["tokens"])] if precision == "fp32" else None
        figures.append(Figure(f"train {precision}", f"{shape} sequences/s", f"{r['sequences_per_s']:.1f}",
                              note=f"{r['flops_per_step'] / 1e9:.0f} GFLOP/step, {r['step_seconds']:.2f} s/step"))
        figures.append(Figure(f"train {precision}", f"{shape} share of the {precision} matmul ceiling",
                              f"{share:.0%} ({r['flops_per_s'] / 1e9:.1f} of {r['ceiling_flops_per_s'] / 1e9:.1f} GFLOP/s)",
                              f"≥ {goal:.0%}" if goal else "—", None if goal is None else share >= goal))
        if (r["batch"], r["tokens"]) == (128, 512):
            figures.append(Figure(f"train {precision}", f"{shape} peak memory", f"{r['peak_rss_gb']:.1f} GB",
                                  f"≤ {MEMORY_GOAL_GB:.0f} GB", r["peak_rss_gb"] <= MEMORY_GOAL_GB))


def _prepare(figures: list[Figure], data) -> None:
    from wmkit.bench.prepare import COLD_GOAL_S, WARM_GOAL_S, time_prepare

    if data is None:
        figures.append(Figure("prepare", "commits cold / warm", "skipped",
                              note="pass --prepare-data DIR (train.jsonl.zst + val.jsonl.zst, CommitPackFT schema)"))
        return
    try:
        r = time_prepare(data)
    except DataError as exc:
        figures.append(Figure("prepare", "commits-py cold / warm", "skipped", note=str(exc)))
        return
    note = f"{r['rows_read']:,} rows read, {r['kept']:,} kept, {r['workers']} workers, load {r['load_average']:.1f}"
    figures.append(Figure("prepare", "commits-py cold", f"{r['cold_s']:.1f} s", f"≤ {COLD_GOAL_S:.0f} s",
                          r["cold_s"] <= COLD_GOAL_S, note))
    figures.append(Figure("prepare", "commits-py warm (cache hit)", f"{r['warm_s']:.2f} s", f"≤ {WARM_GOAL_S:.0f} s",
                          r["warm_s"] <= WARM_GOAL_S))


def _audit(figures: list[Figure]) -> None:
    from wmkit.bench.audit import AUDIT_GOAL_S, PHASES, time_audit

    r = time_audit(n=5000, length=512)
    t = r["timing"]
    where = ", ".join(f"{label.split(' ')[0]} {t[key]:.0f} s" for key, label in PHASES if t.get(key))
    figures.append(Figure("audit", "full audit, N = 5,000 pairs at 512 tokens", f"{t['total_s']:.1f} s",
                          f"≤ {AUDIT_GOAL_S:.0f} s", t["total_s"] <= AUDIT_GOAL_S, where))


def _latency(figures: list[Figure]) -> None:
    from wmkit.bench.latency import LIMIT_SHARE_GOAL, time_latency

    r = time_latency()
    figures.append(Figure("latency", "wmkit edit embedding, batch 1, 512 tokens per side",
                          f"{r['wmkit_ms']:.1f} ms", note=f"1 thread; tokenization {r['tokenize_ms']:.1f} ms "
                          "(both sides, separately)" if r["tokenize_ms"] is not None else "1 thread"))
    for m in r["models"]:
        figures.append(Figure("latency", f"speed-up over the {m['model']} shape", f"{m['speedup']:.1f}x",
                              f"≥ {m['goal']:.0f}x", m["speedup"] >= m["goal"], f"{m['ms']:.0f} ms"))
        figures.append(Figure("latency", f"share of the FLOP limit ({m['flop_limit']:.1f}x) vs {m['model']}",
                              f"{m['share_of_limit']:.0%}", f"≥ {LIMIT_SHARE_GOAL:.0%}",
                              m["share_of_limit"] >= LIMIT_SHARE_GOAL))


def run_suite(*, skip: tuple[str, ...] = (), bf16: bool | None = None, steps: int = 2, prepare_data=None,
              on_figure: Callable[[Figure], None] | None = None) -> list[Figure]:
    """Every figure, in order. ``bf16``: True forces the bf16 training rows, False skips them, None
    runs them only where the bf16 ceiling beats fp32's. ``on_figure`` sees each figure as it lands."""
    from wmkit.bench.speed import matmul_ceiling

    figures: list[Figure] = []

    def extend(step: Callable[[list[Figure]], None]) -> None:
        start = len(figures)
        step(figures)
        for f in figures[start:]:
            if on_figure:
                on_figure(f)

    ceilings = {p: matmul_ceiling(precision=p) for p in ("fp32", "bf16")}
    extend(lambda f: f.extend([Figure("ceiling", f"{p} matmul ceiling (2048³, this process's threads)",
                                      f"{c / 1e9:.1f} GFLOP/s") for p, c in ceilings.items()]))
    if "train" not in skip:
        extend(lambda f: _training(f, "fp32", steps))
    bf16_faster = ceilings["bf16"] > ceilings["fp32"]
    if "bf16" not in skip and (bf16 or (bf16 is None and bf16_faster)):
        extend(lambda f: _training(f, "bf16", steps))
    elif "bf16" not in skip:
        why = ("skipped: --no-bf16" if bf16 is False else
               f"skipped: this CPU's bf16 matmul ceiling ({ceilings['bf16'] / 1e9:.1f} GFLOP/s) is below fp32's "
               f"({ceilings['fp32'] / 1e9:.1f}), so bf16 is no speed choice here; --bf16 times it anyway")
        extend(lambda f: f.append(Figure("train bf16", "training in bf16", "skipped", note=why)))
    for name, step in (("prepare", lambda f: _prepare(f, prepare_data)), ("audit", _audit), ("latency", _latency)):
        if name not in skip:
            extend(step)
    return figures
