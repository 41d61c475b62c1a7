"""The ``none`` regularizer: contributes nothing."""

from __future__ import annotations

import torch

from wmkit.components import Regularizer


class NoRegularizer(Regularizer):
    """Zero loss (``regularizer.name = "none"``; the reference's ``WM_REG_MODE=none``)."""

    needs_global_batch = False

    def forward(self, embeddings: torch.Tensor, paired: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"loss": embeddings.new_zeros(())}
