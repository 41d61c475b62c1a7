"""``wmkit bench latency``: batch-1 CPU latency of an edit embedding against foundation-model shapes.

wmkit's edit embedding (target(after) − online(before), both sides at L tokens) is timed beside
randomly initialised encoders of the RoBERTa-base and all-MiniLM-L6-v2 shapes embedding the same
two sides (no download; weights do not change the time). One thread, batch 1, interleaved rounds
(:func:`wmkit.bench.retrieval.time_full_length`), median per model. Each speed-up stands beside its
FLOP limit: the ratio of the two models' FLOPs for the same input (:class:`wmkit.bench.flops.FlopCount`), so "within 10% of the limit" means speed-up ≥ 0.9 × FLOP ratio. Tokenization is timed
separately (the code domain's tokenizer on a standard-library file).
"""

from __future__ import annotations

import inspect
import statistics
import time

#: issue 11's goals: wmkit's speed-up over each shape, and the share of the FLOP limit to reach
LATENCY_GOALS = {"roberta-base": 85.0, "minilm-l6": 12.0}
LIMIT_SHARE_GOAL = 0.9


def _item_flops(embedder, item) -> int:
    from wmkit.bench.flops import FlopCount

    with FlopCount() as count:
        embedder.run_item(item)
    return count.total


def _tokenize_ms(reps: int = 5) -> float | None:
    """Median milliseconds for the code domain to tokenize both sides of a standard-library file."""
    import textwrap

    from wmkit.plugins import get_host

    try:
        domain = get_host().domain("code", {})
    except Exception:  # the code domain is a plugin: without it there is nothing to time
        return None
    text = inspect.getsource(textwrap)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        domain.tokenize(text)
        domain.tokenize(text + "\n")
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def time_latency(*, reps: int = 20, length: int = 512, recipe: str = "loops3_auxpred_vicreg",
                 archs=tuple(LATENCY_GOALS), seed: int = 0) -> dict:
    """Median batch-1 milliseconds per edit for wmkit and each shape, speed-ups and FLOP limits."""
    from wmkit.bench.baselines import random_arch_embedder
    from wmkit.bench.retrieval import WmkitEmbedder, single_thread, time_full_length
    from wmkit.model import build_world_model
    from wmkit.plugins import get_host
    from wmkit.recipe import load_recipe
    from wmkit.seed import seed_everything

    host = get_host()
    values = load_recipe(recipe, overrides=[f"data.max_len={length}"], host=host, environ={}).values
    seed_everything(seed)
    model = build_world_model(values, vocab_size=700, pad_id=0, action_dim=15, resolve=host.constructor).eval()
    embedders = [WmkitEmbedder(model, vocab_size=700, pad_id=0, sequence_length=length),
                 *(random_arch_embedder(a, seed=seed) for a in archs)]
    with single_thread():
        flops = {e.name: _item_flops(e, e.full_length_items(1, seed=seed)[0]) for e in embedders}
    seconds = time_full_length(embedders, reps, seed=seed)
    ms = {name: 1000 * statistics.median(s) for name, s in seconds.items()}
    wm = embedders[0].name
    rows = []
    for e, arch in zip(embedders[1:], archs):
        speedup, limit = ms[e.name] / ms[wm], flops[e.name] / flops[wm]
        rows.append({"model": arch, "name": e.name, "ms": ms[e.name], "speedup": speedup, "flop_limit": limit,
                     "share_of_limit": speedup / limit, "goal": LATENCY_GOALS.get(arch)})
    return {"wmkit_ms": ms[wm], "wmkit_flops": flops[wm], "tokens_per_side": length, "reps": reps,
            "threads": 1, "batch": 1, "tokenize_ms": _tokenize_ms(), "models": rows}
