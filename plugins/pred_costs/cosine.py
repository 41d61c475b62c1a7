"""The ``cosine`` prediction cost (the paper's L_pred)."""

from __future__ import annotations

import torch

from wmkit import objective
from wmkit.components import PredCostInputs
from wmkit_pred_costs.displacement import DisplacementCost


class CosineCost(DisplacementCost):
    """pred = 1 − mean_n cos(ẑ_n, z̄_n) on the raw embeddings (no projector)."""

    def prediction(self, inputs: PredCostInputs) -> torch.Tensor:
        return objective.pred_cosine(inputs.pred, inputs.target)
