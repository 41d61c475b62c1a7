"""Which rows an audit measures: how many, drawn with fixed seeds, and the action derangement."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from wmkit.data.split import EVAL_SPLIT_GROW, EVAL_SPLIT_LABELS
from wmkit.errors import DataError

FULL_VAL_SIZE = 5000
"""``--full-val`` audits this many validation pairs (reference §5, docs/reference.md#s5), or the whole
split if smaller."""
DEFAULT_VAL_SIZE = 1000
"""Validation pairs audited without ``--full-val`` or ``--val-size``."""
MIN_VAL_SIZE = 10
"""Fewer validation pairs than this cannot give a meaningful audit."""
SAMPLE_SEED = 0
"""Seed of the validation and training samples: the same rows for every training seed
(defect D4, docs/reference.md#d4)."""
ACTION_SHUFFLE_SEED = 1
"""Seed of the derangement that gives every prediction another sample's action."""


def choose_size(available: int, *, full_val: bool = False, val_size: int | None = None, split: str = "val") -> int:
    """How many validation pairs to audit; :class:`DataError` when the split cannot supply them.
    ``split`` (``val`` or ``holdout``) is the row set the pairs come from, named in the messages.

    ``val_size`` asks for exactly that many (it wins over ``full_val``); ``full_val`` asks for
    :data:`FULL_VAL_SIZE` or the whole split if smaller; neither gives :data:`DEFAULT_VAL_SIZE` or the
    whole split if smaller.
    """
    if val_size is not None:
        if val_size < MIN_VAL_SIZE:
            raise DataError(f"--val-size {val_size}: an audit needs at least {MIN_VAL_SIZE} validation pairs")
        if val_size > available:
            raise DataError(f"--val-size {val_size}: only {available} pairs of {EVAL_SPLIT_LABELS[split]} were "
                            f"never trained on; ask for {available} or fewer, or pass --full-val")
        return int(val_size)
    n = min(FULL_VAL_SIZE if full_val else DEFAULT_VAL_SIZE, available)
    if n < MIN_VAL_SIZE:
        raise DataError(f"only {available} pairs in {EVAL_SPLIT_LABELS[split]} (an audit needs at least "
                        f"{MIN_VAL_SIZE}); use a larger data source or {EVAL_SPLIT_GROW[split]}")
    return int(n)


def sample_rows(indices: Sequence[int], n: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``n`` of ``indices`` drawn with ``seed``, sorted (all of them when ``n`` ≥ their count)."""
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    if n >= idx.size:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))


def derangement(n: int, seed: int = ACTION_SHUFFLE_SEED) -> np.ndarray:
    """A permutation with no fixed point (one random cycle): row i takes row ``perm[i]``'s action."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 rows")
    order = np.random.default_rng(seed).permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm
