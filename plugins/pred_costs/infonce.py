"""The ``infonce`` prediction cost: each prediction must pick its own target out of the batch's."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F

from wmkit.components import PredCostInputs
from wmkit_pred_costs.displacement import DisplacementCost
from wmkit_pred_costs.plugin import InfoNCEOptions


class InfoNCECost(DisplacementCost):
    """pred = mean_i −log softmax_j(cos(ẑ_i, z̄_j) / τ)[i] over the batch's targets: the training form of
    KNN@1, which the other forms only reach through closeness. dir and mag compare d̂ with
    d = target(after) − target(before), as ``delta_mse`` does, so the prediction stays near its target.
    τ is small because targets of different pairs are close (EMA near its random start)."""

    target_delta_origin: ClassVar[str] = "target_before"

    def __init__(self, *, dim: int, options: Mapping[str, Any]):
        super().__init__(dim=dim, options=options)
        self.temperature = InfoNCEOptions.of(options).temperature

    def prediction(self, inputs: PredCostInputs) -> torch.Tensor:
        logits = F.normalize(inputs.pred, dim=-1) @ F.normalize(inputs.target, dim=-1).T / self.temperature
        return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
