"""Target embeddings reused for up to K steps (``train.target_refresh_every``; off by default).

The EMA target moves by a factor of 1 − decay (1e-5 for the paper's 0.99999) per step, so its
embedding of a state barely changes over K steps. With the option on, each training row's
target(after) (and target(before), for the objectives that read it) is computed when the row is
drawn and reused by later draws of the same row for K − 1 more steps; one target pass per step
becomes one per stale row. The effect on the loss is shown in docs/results.md.

A cache is not saved with checkpoints: ``--resume`` starts it empty, so a resumed run matches a
straight one only up to the target's drift over K steps (with the default 0 resumption is exact).
"""

from __future__ import annotations

import numpy as np
import torch


class TargetCache:
    """Per-row target readouts ``[rows, D]`` and the step each was computed at."""

    def __init__(self, rows: int, refresh_every: int, *, with_before: bool):
        self.refresh_every = int(refresh_every)
        self.with_before = with_before
        self.computed_at = np.full(rows, -(1 << 62), dtype=np.int64)
        self.after: torch.Tensor | None = None
        self.before: torch.Tensor | None = None
        self.passes = 0  # rows encoded by the target (each side), for the run's record

    def lookup(self, model, rows: np.ndarray, before: torch.Tensor, after: torch.Tensor, step: int
               ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(target_before or None, target_after)`` for the batch ``rows`` at ``step``, encoding only
        rows whose cached readouts are K or more steps old."""
        stale = np.nonzero(step - self.computed_at[rows] >= self.refresh_every)[0]
        if len(stale):
            index = torch.from_numpy(stale).to(after.device)
            with torch.no_grad():
                fresh_after = model.encode(after[index], target=True).z.float()
                fresh_before = model.encode(before[index], target=True).z.float() if self.with_before else None
            if self.after is None:
                shape = (len(self.computed_at), fresh_after.shape[1])
                self.after = torch.zeros(shape, device=after.device)
                self.before = torch.zeros(shape, device=after.device) if self.with_before else None
            store = torch.from_numpy(rows[stale]).to(after.device)
            self.after[store] = fresh_after
            if self.with_before:
                self.before[store] = fresh_before
            self.computed_at[rows[stale]] = step
            self.passes += len(stale) * (2 if self.with_before else 1)
        batch = torch.from_numpy(rows).to(after.device)
        return (self.before[batch] if self.with_before else None), self.after[batch]
