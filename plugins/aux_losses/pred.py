"""The ``pred`` auxiliary loss: deep supervision through the shared predictor
(reference §4, docs/reference.md#s4)."""

from __future__ import annotations

import torch

from wmkit.components import AuxInputs, AuxLoss
from wmkit.objective import normalized_mse


class PredAuxLoss(AuxLoss):
    """A_ℓ = element-mean MSE(normalize(P(z^ℓ_t, h(a))), normalize(z̄)) = mean (2 − 2cos)/D.

    z^ℓ_t is loop ℓ's readout of the before state, **not** detached: with the main loss's
    stop-gradient on z_t this is the only predictive gradient path into the encoder. P is the
    same shared predictor as the main loss (no separate heads), with the same action embedding;
    there is no projector, and the target is the final target embedding z̄.
    """

    def forward(self, inputs: AuxInputs) -> dict[str, torch.Tensor]:
        prediction = inputs.predictor(inputs.loop_state, inputs.action_embedding)
        return {"loss": normalized_mse(prediction.to(inputs.target.dtype), inputs.target)}
