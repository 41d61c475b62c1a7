"""What an edit changed, read from the token ids of its two states.

Both states of a prepared pair share one window offset and are padded at the end
(:func:`wmkit.prepare.fit_window`), so the changed region is what lies between their common prefix
and their common suffix. :func:`edit_span` finds it for a batch (torch, on any device);
:func:`edit_window` lays it out as a fixed-length token window for action encoders;
:func:`token_bags` counts the tokens removed and added (NumPy), the features of the audit's
linear edit baseline. Several separate hunks become one span from the first change to the last.
"""

from __future__ import annotations

import numpy as np
import torch


def edit_span(before: torch.Tensor, after: torch.Tensor, pad_id: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(start, end_before, end_after)`` per row ``[B]``: the edit replaced
    ``before[start:end_before]`` by ``after[start:end_after]``."""
    length = before.shape[1]
    n_before = (before != pad_id).sum(1)
    n_after = (after != pad_id).sum(1)
    shortest = torch.minimum(n_before, n_after)
    pos = torch.arange(length, device=before.device)
    same = (before == after) & (pos < shortest[:, None])
    start = torch.cumprod(same.to(torch.int32), dim=1).sum(1)
    # compare from the ends: before[n_before-1-j] with after[n_after-1-j], never reaching into the prefix
    back_before = before.gather(1, (n_before[:, None] - 1 - pos).clamp(min=0))
    back_after = after.gather(1, (n_after[:, None] - 1 - pos).clamp(min=0))
    same_back = (back_before == back_after) & (pos < (shortest - start)[:, None])
    suffix = torch.cumprod(same_back.to(torch.int32), dim=1).sum(1)
    return start, n_before - suffix, n_after - suffix


def edit_window(before: torch.Tensor, after: torch.Tensor, pad_id: int, *, length: int, delete_id: int,
                insert_id: int) -> torch.Tensor:
    """Token ids ``[B, length]``: ``delete_id`` and the first removed tokens in the first half,
    ``insert_id`` and the first added tokens in the second half, PAD where a side has fewer."""
    start, end_before, end_after = edit_span(before, after, pad_id)
    max_index = before.shape[1] - 1

    def side(tokens: torch.Tensor, end: torch.Tensor, size: int) -> torch.Tensor:
        index = start[:, None] + torch.arange(size, device=tokens.device)
        got = tokens.gather(1, index.clamp(max=max_index))
        return torch.where(index < end[:, None], got, torch.full_like(got, pad_id))

    half = length // 2
    rows = before.shape[0]
    marker = lambda value: torch.full((rows, 1), value, dtype=before.dtype, device=before.device)  # noqa: E731
    return torch.cat([marker(delete_id), side(before, end_before, half - 1),
                      marker(insert_id), side(after, end_after, length - half - 1)], dim=1)


def token_bags(before: np.ndarray, after: np.ndarray, pad_id: int, vocab_size: int,
               buckets: int = 2048) -> np.ndarray:
    """Counts ``[N, 2·B]`` of the tokens each edit removed (first half) and added (second half), as
    multisets: removed = (count in before − count in after)⁺ per token, added the other way round.

    Token ``t`` counts in bucket ``t mod B`` with ``B = min(buckets, vocab_size)`` (exact when the
    vocabulary fits). PAD is not counted.
    """
    before, after = np.asarray(before), np.asarray(after)
    width = int(min(buckets, vocab_size))
    rows = np.arange(before.shape[0])[:, None]

    def counts(tokens: np.ndarray) -> np.ndarray:
        out = np.zeros((tokens.shape[0], width), dtype=np.float32)
        np.add.at(out, (np.broadcast_to(rows, tokens.shape), tokens % width), (tokens != pad_id).astype(np.float32))
        return out

    cb, ca = counts(before.astype(np.int64)), counts(after.astype(np.int64))
    return np.concatenate([np.maximum(cb - ca, 0.0), np.maximum(ca - cb, 0.0)], axis=1)
