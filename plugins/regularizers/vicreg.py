"""VICReg in the reference's exact form (reference §4, docs/reference.md#s4)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from wmkit.components import Regularizer
from wmkit.objective import covariance_loss, variance_hinge
from wmkit_regularizers.plugin import VICRegOptions


class VICReg(Regularizer):
    """R = w_var · mean_d relu(1 − std_d(z)) + w_cov · Σ_{i≠j} C_ij²/D [+ w_inv · MSE(z, paired)].

    std is the unbiased per-dimension standard deviation taken with no ε (as the reference;
    option ``eps`` > 0 gives VICReg's sqrt(var + ε)); C is the unbiased covariance. Defaults
    1.0 / 0.04 / 0.0 are the reference's: its static term is ``var + 0.04·cov`` times the
    recipe's ``regularizer.weight`` (0.1), with no invariance term. The invariance term is the
    element-mean MSE between ``embeddings`` and ``paired`` (when the model passes a paired view,
    i.e. ``regularizer.apply_to`` includes the predictor) — full VICReg when its weight is > 0.

    Terms: ``variance``, ``covariance`` and, with a paired view, ``invariance`` (unweighted).
    """


    def __init__(self, *, dim: int, options: Mapping[str, Any]):
        super().__init__(dim=dim, options=options)
        opts = VICRegOptions.of(options)
        self.variance_weight = opts.variance_weight
        self.covariance_weight = opts.covariance_weight
        self.invariance_weight = opts.invariance_weight
        self.eps = opts.eps

    def forward(self, embeddings: torch.Tensor, paired: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z = embeddings
        variance = variance_hinge(z, self.eps)
        covariance = covariance_loss(z)
        loss = self.variance_weight * variance + self.covariance_weight * covariance
        terms = {"variance": variance.detach(), "covariance": covariance.detach()}
        if paired is not None:
            invariance = F.mse_loss(z, paired.to(z.dtype))
            terms["invariance"] = invariance.detach()
            if self.invariance_weight:
                loss = loss + self.invariance_weight * invariance
        return {"loss": loss, **terms}
