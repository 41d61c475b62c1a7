"""The ``delta_mse`` prediction cost: direct delta prediction (paper §"Negative results")."""

from __future__ import annotations

from typing import ClassVar

import torch

from wmkit import objective
from wmkit.components import PredCostInputs
from wmkit_pred_costs.displacement import DisplacementCost


class DeltaMSECost(DisplacementCost):
    """pred = element-mean MSE(d̂, d) with d = target(after) − target(before), the paper's Δz; dir and
    mag compare with the same d. (With z_t on both sides, MSE(ẑ − z_t, z̄ − z_t) would be MSE(ẑ, z̄).)"""

    target_delta_origin: ClassVar[str] = "target_before"

    def prediction(self, inputs: PredCostInputs) -> torch.Tensor:
        return objective.delta_mse(inputs.pred_delta, inputs.target_delta)
