"""The ``none`` auxiliary loss: contributes nothing."""

from __future__ import annotations

import torch

from wmkit.components import AuxInputs, AuxLoss


class NoAuxLoss(AuxLoss):
    """Zero loss (``loss.aux.name = "none"``)."""

    def forward(self, inputs: AuxInputs) -> dict[str, torch.Tensor]:
        return {"loss": inputs.target.new_zeros(())}
