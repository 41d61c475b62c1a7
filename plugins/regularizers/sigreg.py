"""SIGReg as the reference computes it (reference §4, docs/reference.md#s4)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from wmkit.components import Regularizer
from wmkit_regularizers.plugin import SIGRegOptions

#: floor of direction norms and projection stds
_FLOOR = 1e-8


class SIGReg(Regularizer):
    """Mean over random directions of |term1 − term2 − √2| (reference §4, docs/reference.md#s4).

    For each of ``directions`` unit vectors u_m, drawn afresh on every call from torch's global
    RNG (seed it to reproduce a value), the projections p = z·u_m are standardised,
    h = (p − mean p) / std p (unbiased std), and

    - term1 = (2/N) Σ_n exp(−h_n²/2),
    - term2 = mean over pairs (i, j) of exp(−(h_i − h_j)²/4): all N² ordered pairs, the diagonal
      included, when N ≤ ``exact_up_to``; otherwise ``sampled_pairs`` pairs drawn uniformly with
      replacement for each direction.

    Note (a property of the reference's formula, kept for fidelity): for standard-normal h,
    term1 → √2 and term2 → 1/√2, so the statistic of a perfectly Gaussian batch is about
    1/√2 ≈ 0.707, not 0. Term: ``epps_pulley`` (the loss itself).
    """


    def __init__(self, *, dim: int, options: Mapping[str, Any]):
        super().__init__(dim=dim, options=options)
        opts = SIGRegOptions.of(options)
        self.directions = opts.directions
        self.exact_up_to = opts.exact_up_to
        self.sampled_pairs = opts.sampled_pairs

    def forward(self, embeddings: torch.Tensor, paired: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z = embeddings
        n, dim = z.shape
        if n < 2:
            zero = z.new_zeros(()) + z.sum() * 0.0
            return {"loss": zero, "epps_pulley": zero.detach()}
        directions = torch.randn(self.directions, dim, device=z.device).to(z.dtype)
        directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(_FLOOR)
        projections = directions @ z.T  # [M, N]
        h = (projections - projections.mean(dim=1, keepdim=True)) / projections.std(dim=1, keepdim=True).clamp_min(_FLOOR)
        term1 = (2.0 / n) * torch.exp(-0.5 * h.pow(2)).sum(dim=1)
        if n <= self.exact_up_to:
            gaps = h.unsqueeze(2) - h.unsqueeze(1)  # [M, N, N]
            term2 = torch.exp(-0.25 * gaps.pow(2)).mean(dim=(1, 2))
        else:
            first = torch.randint(0, n, (self.directions, self.sampled_pairs), device=z.device)
            second = torch.randint(0, n, (self.directions, self.sampled_pairs), device=z.device)
            gaps = torch.gather(h, 1, first) - torch.gather(h, 1, second)
            term2 = torch.exp(-0.25 * gaps.pow(2)).mean(dim=1)
        loss = (term1 - term2 - math.sqrt(2.0)).abs().mean()
        return {"loss": loss, "epps_pulley": loss.detach()}
