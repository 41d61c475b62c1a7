"""Batch-1, one-thread CPU latency of edit embedders and the speed ratios (step 6 of the protocol)."""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Iterable, Mapping, Sequence

from wmkit.bench.baselines import EditEmbedder, EditPairs, LatencyItem

DEFAULT_LATENCY_QUERIES = 20
FULL_LENGTH_REPS = 5


@contextlib.contextmanager
def single_thread():
    """``torch.set_num_threads(1)`` for the block, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_items(embedder: EditEmbedder, items: Sequence[LatencyItem], *, warmup: int = 2) -> list[float]:
    """Seconds of :meth:`EditEmbedder.run_item` per item, one thread, after ``warmup`` untimed calls."""
    times = []
    with single_thread():
        for _ in range(warmup if items else 0):
            embedder.run_item(items[0])
        for item in items:
            t0 = time.perf_counter()
            embedder.run_item(item)
            times.append(time.perf_counter() - t0)
    return times


def _median_ms(seconds: Iterable[float]) -> float | None:
    values = list(seconds)
    return 1000.0 * statistics.median(values) if values else None


def format_ratio(wmkit_ms: float, model_ms: float) -> str:
    """``1/N`` with N = model_ms / wmkit_ms rounded (one decimal below 10)."""
    speedup = model_ms / wmkit_ms
    return f"1/{speedup:.0f}" if speedup >= 10 else f"1/{speedup:.1f}"


def speed_ratios(models: Mapping[str, dict], reference: str = "wmkit") -> list[dict]:
    """wmkit's latency against every other timed model (full-length inputs when measured).

    ``required_speedup`` is the issue's claim for that model (5 for MiniLM, 30 for RoBERTa-base-size
    encoders); ``passes`` is None where there is no claim.
    """
    ref = models.get(reference)
    if not ref:
        return []
    out = []
    for name, m in models.items():
        if name == reference or m.get("kind") in ("lexical", "random"):
            continue
        basis = "full-length inputs" if m.get("cpu_ms_full") and ref.get("cpu_ms_full") else "real queries"
        key = "cpu_ms_full" if basis == "full-length inputs" else "cpu_ms"
        if not m.get(key) or not ref.get(key):
            continue
        speedup = m[key] / ref[key]
        required = m.get("speed_target")
        out.append({"model": name, "basis": basis, "wmkit_ms": ref[key], "model_ms": m[key],
                    "speedup": speedup, "ratio": format_ratio(ref[key], m[key]),
                    "wmkit_tokens": ref.get("max_tokens"), "model_tokens": m.get("max_tokens"),
                    "required_speedup": required, "passes": None if required is None else bool(speedup >= required)})
    return out


def _time_real_queries(entry: dict, embedder: EditEmbedder, latency_pairs: EditPairs) -> None:
    """``cpu_ms`` (median over real queries), token counts and tokenizing time of one model."""
    items = embedder.latency_items(latency_pairs)
    if not items:
        return
    seconds = time_items(embedder, items)
    entry["cpu_ms"] = _median_ms(seconds)
    entry["latency_samples"] = len(seconds)
    entry["tokens_median"] = [float(statistics.median(i.tokens[0] for i in items)),
                              float(statistics.median(i.tokens[1] for i in items))]
    entry["tokenize_ms"] = _median_ms(i.tokenize_s for i in items if i.tokenize_s is not None)


def time_full_length(embedders: Sequence[EditEmbedder], reps: int, *, seed: int = 0, warmup: int = 2,
                     advance=None) -> dict[str, list[float]]:
    """Seconds per full-length input for every model, **interleaved** (round-robin over models).

    Each round times one input per model, so a load change on the machine hits every model alike
    and the ratios between them stay meaningful. One thread; ``warmup`` untimed calls per model.
    """
    items = {e.name: e.full_length_items(reps, seed=seed) for e in embedders}
    timed = [e for e in embedders if items[e.name]]
    out: dict[str, list[float]] = {e.name: [] for e in timed}
    with single_thread():
        for e in timed:
            for _ in range(warmup):
                e.run_item(items[e.name][0])
        for r in range(reps):
            for e in timed:
                t0 = time.perf_counter()
                e.run_item(items[e.name][r])
                out[e.name].append(time.perf_counter() - t0)
            if advance:
                advance(1)
    return out
