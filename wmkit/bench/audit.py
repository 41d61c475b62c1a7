"""``wmkit bench audit``: how long a full-validation audit takes, and where the time goes.

Without a checkpoint: a randomly initialised model of the paper recipe on random prepared data of
the asked size (N validation pairs × L tokens per side, and a training split the size of
commits-py's for the near-duplicate scan). With one: that checkpoint and its data.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

#: issue 11's goal: a full audit of N = 5,000 pairs at 512 tokens on 2 cores, seconds
AUDIT_GOAL_S = 60.0
#: the size of commits-py's training split, which the near-duplicate scan reads
COMMITS_TRAIN_ROWS = 35404
#: the timing keys of an audit result and what they measure
PHASES = (("load_s", "load checkpoint + data"), ("encode_s", "encoding (model forward)"),
          ("search_s", "nearest-neighbour search (faiss)"), ("near_duplicates_s", "near-duplicate scan"),
          ("metrics_s", "other metrics"))


def random_setup(recipe_name: str, n: int, length: int, train_rows: int):
    """A randomly initialised model of ``recipe_name`` and random prepared data of the asked size."""
    from wmkit.model import build_world_model
    from wmkit.plugins import get_host
    from wmkit.recipe import load_recipe
    from wmkit.seed import seed_everything

    host = get_host()
    recipe = load_recipe(recipe_name, overrides=[f"data.max_len={length}"], host=host, environ={})
    vocab, action_dim = 700, 15
    seed_everything(0)
    model = build_world_model(recipe.values, vocab_size=vocab, pad_id=0, action_dim=action_dim,
                              resolve=host.constructor).eval()
    rng = np.random.default_rng(0)
    rows = n + train_rows
    before = rng.integers(1, vocab, size=(rows, length), dtype=np.int32)
    after = before.copy()
    span = slice(min(100, length // 4), min(140, length // 4 + 40))
    after[:, span] = rng.integers(1, vocab, size=(rows, span.stop - span.start), dtype=np.int32)
    split = np.zeros(rows, dtype=np.uint8)
    split[:n] = 1
    prepared = SimpleNamespace(
        before=before, after=after, actions=rng.normal(size=(rows, action_dim)).astype(np.float32), split=split,
        labels={"edit_type": rng.integers(0, 3, rows).astype(np.int16)},
        trajectory=np.repeat(np.arange(rows // 4 + 1), 4)[:rows].astype(np.int32),
        ids=None, meta={}, train_indices=lambda: np.nonzero(split == 0)[0], val_indices=lambda: np.nonzero(split == 1)[0])
    domain = SimpleNamespace(name="code", vocab=SimpleNamespace(version="random", pad_id=0, size=vocab),
                             label_names={"edit_type": ["ADD", "DELETE", "MODIFY"]})
    return model, domain, prepared


def time_audit(checkpoint: str | None = None, *, n: int = 5000, length: int = 512,
               train_rows: int = COMMITS_TRAIN_ROWS, recipe: str = "loops3_auxpred_vicreg",
               geometry: bool = False, progress: bool = False) -> dict:
    """One full audit; returns its ``timing`` (seconds per phase), what was audited and the threads."""
    import torch

    from wmkit.audit.core import audit_model, run_audit
    from wmkit.layers import count_parameters

    t0 = time.perf_counter()
    if checkpoint:
        result = run_audit(checkpoint, full_val=True, geometry=geometry, progress=progress, save=False)
        what = f"checkpoint {result['checkpoint']} on {result['data_source']}"
        setup_s = 0.0
    else:
        model, domain, prepared = random_setup(recipe, n, length, train_rows)
        setup_s = time.perf_counter() - t0
        params = count_parameters(model)
        what = (f"random {recipe} model ({params:,} parameters incl. EMA target), random tokens, "
                f"{n} val pairs x {length} tokens, {train_rows} train rows")
        result = audit_model(model, domain, prepared, val_size=n, geometry=geometry, progress=progress)
    return {"what": what, "setup_s": setup_s, "timing": result["timing"], "gallery_size": result["gallery_size"],
            "threads": torch.get_num_threads(), "n": n, "length": length}
