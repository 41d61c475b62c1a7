"""What every built-in prediction cost shares: the displacement and covariance terms
(reference §4, docs/reference.md#s4)."""

from __future__ import annotations

import torch

from wmkit import objective
from wmkit.components import PredCost, PredCostInputs


class DisplacementCost(PredCost):
    """The CodeWM 2 cost: a prediction term ``pred`` (the form, :meth:`prediction`) beside

    - ``dir`` = 1 − mean cos(d̂, d) and ``mag`` = mean (log‖d̂‖ − log‖d‖)², comparing the predicted
      displacement with the target's;
    - ``cov`` = Σ_{i≠j} C_ij² / D, C the covariance of the online readouts (before and after).
    """

    def prediction(self, inputs: PredCostInputs) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def forward(self, inputs: PredCostInputs) -> dict[str, torch.Tensor]:
        return {"pred": self.prediction(inputs),
                "dir": objective.direction_loss(inputs.pred_delta, inputs.target_delta),
                "mag": objective.magnitude_loss(inputs.pred_delta, inputs.target_delta),
                "cov": objective.covariance_loss(inputs.online)}
