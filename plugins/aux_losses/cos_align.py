"""The ``cos_align`` auxiliary loss (reference §4, docs/reference.md#s4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wmkit.components import AuxInputs, AuxLoss


class CosAlignAuxLoss(AuxLoss):
    """A_ℓ = 1 − mean_n cos(z^ℓ_t, z̄): pull loop ℓ's before-readout toward the target of the
    after state, with no action (what "contrast" computed before the reference's commit ef96eee).
    """

    def forward(self, inputs: AuxInputs) -> dict[str, torch.Tensor]:
        cos = F.cosine_similarity(inputs.loop_state.to(inputs.target.dtype), inputs.target, dim=-1, eps=1e-8)
        return {"loss": 1.0 - cos.mean()}
