"""The ``ntxent`` auxiliary loss: supervised contrastive learning on per-loop deltas
(reference §4, docs/reference.md#s4)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F

from wmkit.components import AuxInputs, AuxLoss
from wmkit_aux_losses.plugin import NTXentOptions

#: floor of action norms before the action cosine
_ACTION_FLOOR = 1e-6


class NTXentAuxLoss(AuxLoss):
    """SupCon (Khosla et al. 2020) on deltas, with positives chosen by action similarity.

    For loop ℓ: deltas δ_n = z̄_n − z^ℓ_{t,n}; rows with ‖δ_n‖ ≤ ``min_delta_norm`` are dropped;
    the rest are L2-normalised. Logits s_ij = cos(δ_i, δ_j) / ``temperature``. Row j is a
    positive of anchor i (j ≠ i) when cos(a_i, a_j) > ``pos_threshold`` on the raw action
    vectors. For every anchor with at least one positive,

        ℓ_i = −(1/|P(i)|) Σ_{p ∈ P(i)} log( exp(s_ip) / Σ_{k ≠ i} exp(s_ik) ),

    and the loss is the mean of ℓ_i over those anchors (0, with no gradient, when fewer than two
    rows survive or no anchor has a positive). Terms: ``anchors`` (how many anchors counted).

    The reference's version multiplied the positive mask into the log-probabilities, whose
    diagonal is −inf, so every row summed to NaN and its finiteness guard dropped the loss
    (in the wm_base.py version read for this port). Here the diagonal is masked out instead.
    """

    needs_global_batch: ClassVar[bool] = True  # negatives are the other rows of the batch

    def __init__(self, *, dim: int, options: Mapping[str, Any]):
        super().__init__(dim=dim, options=options)
        opts = NTXentOptions.of(options)
        self.temperature = opts.temperature  # at least 0.01, as the reference floors it
        self.pos_threshold = opts.pos_threshold
        self.min_delta_norm = opts.min_delta_norm

    def forward(self, inputs: AuxInputs) -> dict[str, torch.Tensor]:
        deltas = inputs.target - inputs.loop_state.to(inputs.target.dtype)
        norms = deltas.norm(dim=-1)
        keep = norms > self.min_delta_norm
        zero = deltas.new_zeros(()) + deltas.sum() * 0.0  # 0 that keeps the graph
        if int(keep.sum()) < 2:
            return {"loss": zero, "anchors": zero.detach()}
        units = deltas[keep] / norms[keep].unsqueeze(-1)
        actions = inputs.actions.reshape(inputs.actions.shape[0], -1)[keep].to(deltas.dtype)
        actions = actions / actions.norm(dim=-1, keepdim=True).clamp_min(_ACTION_FLOOR)

        n = units.shape[0]
        self_mask = torch.eye(n, dtype=torch.bool, device=units.device)
        positives = (actions @ actions.T > self.pos_threshold) & ~self_mask
        counts = positives.sum(dim=1)
        anchors = counts > 0
        if not bool(anchors.any()):
            return {"loss": zero, "anchors": zero.detach()}
        logits = (units @ units.T / self.temperature).masked_fill(self_mask, float("-inf"))
        log_prob = F.log_softmax(logits, dim=1).masked_fill(~positives, 0.0)
        mean_positive = log_prob.sum(dim=1)[anchors] / counts[anchors]
        loss = -mean_positive.mean()
        return {"loss": loss, "anchors": anchors.sum().to(loss.dtype)}
