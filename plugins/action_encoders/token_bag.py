"""An action encoder that is a linear map of what the edit removed and added, counted per token."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from wmkit.components import ActionEncoder, ActionInputs
from wmkit.errors import WmkitError
from wmkit_action_encoders.mlp import MLPActionEncoder
from wmkit_action_encoders.plugin import TokenBagOptions


def removed_added_counts(before: torch.Tensor, after: torch.Tensor, pad_id: int, buckets: int) -> torch.Tensor:
    """``[B, 2·buckets]``: per bucket, (count in before − count in after)⁺ then the other way round.

    The torch twin of :func:`wmkit.edits.token_bags` (the audit's linear baseline features), so a
    model with this action encoder holds that baseline as a special case.
    """
    def counts(tokens: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(tokens.shape[0], buckets, device=tokens.device)
        return out.scatter_add_(1, tokens.long() % buckets, (tokens != pad_id).to(out.dtype))

    cb, ca = counts(before), counts(after)
    return torch.cat([(cb - ca).clamp(min=0), (ca - cb).clamp(min=0)], dim=1)


class TokenBagActionEncoder(ActionEncoder):
    """a = W · [removed counts, added counts] + b (+ the paper's MLP of the action vector with
    ``with_vector``). No normalisation: the embedding grows with the edit. ``init = "ridge"`` fits W
    and b in closed form before step 1 (:mod:`wmkit.warm_start`). With the predictor's ``add_action``, the prediction contains the
    linear edit model ``target(before) + W · counts`` as a special case.
    """

    inputs: ClassVar[tuple[str, ...]] = ("vector", "edit_tokens")

    def __init__(self, *, action_dim: int, vocab_size: int, pad_id: int, dim: int, heads: int,
                 options: Mapping[str, Any]):
        super().__init__(action_dim=action_dim, vocab_size=vocab_size, pad_id=pad_id, dim=dim, heads=heads,
                         options=options)
        opts = TokenBagOptions.of(options)
        self.buckets, self.pad_id = min(opts.buckets, vocab_size), int(pad_id)
        # starts at 0 so the first predictions do not depend on random count weights
        self.counts = nn.Linear(2 * self.buckets, dim, bias=False)
        nn.init.zeros_(self.counts.weight)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.warm_start_pairs = opts.init_pairs if opts.init == "ridge" else 0
        self.vector = (MLPActionEncoder(action_dim=action_dim, vocab_size=vocab_size, pad_id=pad_id, dim=dim,
                                        heads=heads, options={"hidden": opts.hidden})
                       if opts.with_vector else None)

    def linear_features(self, inputs: ActionInputs) -> torch.Tensor:
        if inputs.before is None or inputs.after is None:
            raise WmkitError("the token_bag action encoder reads the states' token ids; pass ActionInputs "
                             "with before and after")
        return removed_added_counts(inputs.before, inputs.after, self.pad_id, self.buckets)

    @torch.no_grad()
    def set_linear(self, weights: torch.Tensor, bias: torch.Tensor) -> None:
        self.counts.weight.copy_(weights.T)
        self.bias.copy_(bias)
        if self.vector is not None:  # the action vector's MLP starts silent, so the embedding is the fit
            last = self.vector.get_submodule("2")
            last.weight.zero_()
            last.bias.zero_()

    def forward(self, inputs: ActionInputs) -> torch.Tensor:
        out = self.counts(self.linear_features(inputs)) + self.bias
        if self.vector is not None:
            out = out + self.vector(inputs)
        return out
