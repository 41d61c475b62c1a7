"""The ``delta_cosine`` prediction cost: the normalised delta loss."""

from __future__ import annotations

from typing import ClassVar

import torch

from wmkit import objective
from wmkit.components import PredCostInputs
from wmkit_pred_costs.displacement import DisplacementCost


class DeltaCosineCost(DisplacementCost):
    """pred = 1 − mean_n cos(d̂_n, d_n) with d = target(after) − target(before), the paper's Δz (the
    reference took the MSE of the normalised deltas: the same loss scaled by 2/D)."""

    target_delta_origin: ClassVar[str] = "target_before"

    def prediction(self, inputs: PredCostInputs) -> torch.Tensor:
        return objective.delta_cosine(inputs.pred_delta, inputs.target_delta)
