"""The token window: cut both sides of a transition to ``max_len`` tokens (head, or around the edit) and pad."""

from __future__ import annotations

import numpy as np


def first_difference(a, b) -> int:
    """Index of the first position where token lists ``a`` and ``b`` differ (min length if a prefix)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if diff.size else n


def window_start(before, after, max_len: int, window: str) -> int:
    """First kept token: 0 for ``head``; for ``edit`` the first difference minus ``max_len // 2``,
    clipped to ``[0, max(len(before), len(after)) - max_len]`` (one offset for both sides)."""
    if window == "head":
        return 0
    longest = max(len(before), len(after))
    if longest <= max_len:
        return 0
    start = first_difference(before, after) - max_len // 2
    return max(0, min(start, longest - max_len))


def fit_window(before, after, max_len: int, window: str, pad_id: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Cut both sides to ``max_len`` tokens (see :func:`window_start`) and pad.

    Returns ``(before, after, identical)`` where ``identical`` is True when the cut sides are equal
    although the full sequences differ (defect D6, docs/reference.md#d6).
    """
    start = window_start(before, after, max_len, window)
    cut_b, cut_a = before[start:start + max_len], after[start:start + max_len]
    identical = list(cut_b) == list(cut_a) and list(before) != list(after)
    out_b = np.full(max_len, pad_id, dtype=np.int32)
    out_a = np.full(max_len, pad_id, dtype=np.int32)
    out_b[:len(cut_b)] = cut_b
    out_a[:len(cut_a)] = cut_a
    return out_b, out_a, identical
