"""The ``projector_mse`` prediction cost (the reference's default)."""

from __future__ import annotations

import torch

from wmkit import objective
from wmkit.components import PredCostInputs
from wmkit_pred_costs.displacement import DisplacementCost


class ProjectorMSECost(DisplacementCost):
    """pred = element-mean MSE(normalize(proj_p(ẑ)), normalize(proj_t(z̄))) = (2 − 2cos)/D in projector
    space, with the model's training projectors; on ẑ and z̄ directly when ``model.projector.enabled``
    is false (the reference's ``WM_USE_PROJECTOR=0``)."""

    def prediction(self, inputs: PredCostInputs) -> torch.Tensor:
        return objective.pred_projector_mse(inputs.pred, inputs.target, inputs.pred_projector,
                                            inputs.target_projector)
