"""An action encoder that maps what the edit removed and added, counted per token (and, optionally, where
tokens moved): linear, or linear plus an MLP over target(before) and that linear embedding."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from wmkit.components import ActionEncoder, ActionInputs
from wmkit.errors import RecipeError, WmkitError
from wmkit.layers import sinusoidal_positions
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


def position_shifts(before: torch.Tensor, after: torch.Tensor, pad_id: int, buckets: int) -> torch.Tensor:
    """``[B, buckets]``: per bucket, Σ position / L of its tokens in after minus the same in before
    (L: the window). Zero for an edit that keeps every token where it was; ± the same for an edit and
    its revert."""
    def sums(tokens: torch.Tensor) -> torch.Tensor:
        where = torch.arange(tokens.shape[1], device=tokens.device, dtype=torch.float32) / tokens.shape[1]
        weights = where.expand(tokens.shape[0], -1) * (tokens != pad_id)
        out = torch.zeros(tokens.shape[0], buckets, device=tokens.device)
        return out.scatter_add_(1, tokens.long() % buckets, weights)

    return sums(after) - sums(before)


#: the spans' features enter the shared ridge fit at this weight, i.e. 25x its penalty: with few pairs per
#: (token, span) they only refine the counts (0.2, the one weight tried beside 0 in exploratory ridge fits)
SPAN_WEIGHT = 0.2


def span_count_changes(before: torch.Tensor, after: torch.Tensor, pad_id: int, buckets: int,
                       spans: int) -> torch.Tensor:
    """``[B, buckets·spans]``: per bucket b and span j of the window (positions i with ⌊i·spans / L⌋ = j),
    its count in after minus in before, times :data:`SPAN_WEIGHT`. Summed over the spans: the count change;
    a token that moves to another span shows where it went."""
    length = before.shape[1]
    span = torch.arange(length, device=before.device) * spans // length

    def counts(tokens: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(tokens.shape[0], buckets * spans, device=tokens.device)
        where = (tokens.long() % buckets) * spans + span
        return out.scatter_add_(1, where, (tokens != pad_id).to(out.dtype))

    return SPAN_WEIGHT * (counts(after) - counts(before))


#: the order features' shortest and longest period, in positions
ORDER_PERIODS = (4.0, 256.0)


def order_sinusoids(length: int, frequencies: int, device=None) -> torch.Tensor:
    """``[length, 2·frequencies]``: sin and cos of each position at periods spaced geometrically over
    :data:`ORDER_PERIODS`."""
    periods = torch.logspace(math.log10(ORDER_PERIODS[0]), math.log10(ORDER_PERIODS[1]), frequencies,
                             dtype=torch.float64, device=device)
    angle = 2 * math.pi * torch.arange(length, dtype=torch.float64, device=device)[:, None] / periods
    return torch.cat([angle.sin(), angle.cos()], dim=1).float()


def order_features(before: torch.Tensor, after: torch.Tensor, pad_id: int, buckets: int,
                   frequencies: int) -> torch.Tensor:
    """``[B, buckets·2·frequencies]``: for a reordering (every bucket's count the same in before and after,
    some token moved), per bucket the sum of its tokens' :func:`order_sinusoids` in after minus in before;
    zero for every other edit, which the counts already see."""
    table = order_sinusoids(before.shape[1], frequencies, before.device)
    width = table.shape[1]

    def sums(tokens: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(tokens.shape[0], buckets, width, device=tokens.device)
        weights = table.expand(tokens.shape[0], -1, -1) * (tokens != pad_id).unsqueeze(-1)
        index = (tokens.long() % buckets).unsqueeze(-1).expand(-1, -1, width)
        return out.scatter_add_(1, index, weights)

    return (sums(after) - sums(before)).flatten(1) * reorderings(before, after, pad_id, buckets).unsqueeze(1)


def reorderings(before: torch.Tensor, after: torch.Tensor, pad_id: int, buckets: int) -> torch.Tensor:
    """``[B]``: whether the edit moves tokens but leaves every bucket's count as it was."""
    counts = removed_added_counts(before, after, pad_id, buckets)
    return (counts.sum(dim=1) == 0) & (before != after).any(dim=1)


class TokenBagActionEncoder(ActionEncoder):
    """a = W · f + b, with f = [removed counts, added counts] (+ position shifts with ``positions``, + per-span
    count changes with ``position_bins``), plus
    s · MLP(c · target(before), (W · f + b) / s) with ``head = "mlp"`` (the mean of ``head_count`` such
    MLPs; with ``head_tokens`` the MLP also reads :meth:`token_position_features`), plus the paper's MLP of
    the action vector with ``with_vector``. No normalisation: the embedding grows with the edit.
    ``init = "ridge"`` fits W and b in closed form before step 1 (:mod:`wmkit.warm_start`), then
    ``init_steps`` AdamW steps fit the MLP heads (and the token-position weights) to what ridge left, s
    being the RMS of that residual. With the predictor's ``add_action``, the prediction contains the linear
    edit model ``target(before) + W · f`` as a special case.
    """

    inputs: ClassVar[tuple[str, ...]] = ("vector", "edit_tokens")

    def __init__(self, *, action_dim: int, vocab_size: int, pad_id: int, dim: int, heads: int,
                 options: Mapping[str, Any]):
        super().__init__(action_dim=action_dim, vocab_size=vocab_size, pad_id=pad_id, dim=dim, heads=heads,
                         options=options)
        opts = TokenBagOptions.of(options)
        if opts.head_count > 1 and opts.head != "mlp":
            raise RecipeError(f"model.action.head_count: {opts.head_count} heads are mlp heads; set "
                              f"model.action.head = \"mlp\", or head_count = 1")
        if opts.init_reverts and not opts.init_steps:
            raise RecipeError("model.action.init_reverts: reverts are fit by the mlp head's warm-start steps; set "
                              "model.action.init_steps > 0, or init_reverts = false")
        if opts.init_moves and not opts.init_steps:
            raise RecipeError("model.action.init_moves: synthetic moves are fit by the mlp head's warm-start steps; "
                              "set model.action.init_steps > 0, or init_moves = 0")
        if opts.init_error != "absolute" and not opts.init_steps:
            raise RecipeError(f"model.action.init_error: {opts.init_error!r} is what the mlp head's warm-start steps "
                              f"minimise; set model.action.init_steps > 0, or init_error = \"absolute\"")
        if opts.head_tokens and opts.head != "mlp":
            raise RecipeError(f"model.action.head_tokens: {opts.head_tokens} token-position features are read by the "
                              f"mlp head; set model.action.head = \"mlp\", or head_tokens = 0")
        if opts.init_steps and (opts.head != "mlp" or opts.init != "ridge"):
            raise RecipeError(f"model.action.init_steps: {opts.init_steps} gradient steps fit the mlp head to what "
                              f"the ridge fit leaves; set model.action.head = \"mlp\" and init = \"ridge\", or "
                              f"init_steps = 0")
        self.buckets, self.positions, self.spans = min(opts.buckets, vocab_size), opts.positions, opts.position_bins
        # starts at 0 so the first predictions do not depend on random count weights
        self.counts = nn.Linear(((3 if self.positions else 2) + self.spans) * self.buckets, dim, bias=False)
        nn.init.zeros_(self.counts.weight)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.head = None
        if opts.head == "mlp":
            self.reads_state, self.state_scale = True, opts.head_state_scale
            self.tokens = None
            if opts.head_tokens:
                # t(token) ⊙ q(position), q a learned map of the target's own sinusoidal table
                self.tokens = nn.Embedding(vocab_size, opts.head_tokens)
                self.token_positions = nn.Linear(dim, opts.head_tokens, bias=False)
            width = 2 * dim + opts.head_tokens
            mlps = [nn.Sequential(nn.Linear(width, opts.head_hidden), nn.GELU(), nn.Linear(opts.head_hidden, dim))
                    for _ in range(opts.head_count)]
            for mlp in mlps:
                nn.init.zeros_(mlp[2].weight)  # silent until fit: the embedding starts linear
                nn.init.zeros_(mlp[2].bias)
            # one head keeps the parameter names of checkpoints written before head_count
            self.head = mlps[0] if len(mlps) == 1 else nn.ModuleList(mlps)
            # s: the scale of what the linear part leaves, so the head's inputs and AdamW's steps fit it
            self.register_buffer("head_scale", torch.ones(()))
        if opts.order_frequencies and opts.init != "ridge":
            raise RecipeError(f"model.action.order_frequencies: the order part is fit at the ridge warm start; set "
                              f"model.action.init = \"ridge\", or order_frequencies = 0")
        self.order_frequencies = opts.order_frequencies
        # starts at 0 like the counts; the warm start fits it (set_order)
        self.order = (nn.Linear(2 * opts.order_frequencies * self.buckets, dim, bias=False)
                      if opts.order_frequencies else None)
        if self.order is not None:
            nn.init.zeros_(self.order.weight)
        self.warm_start_pairs = opts.init_pairs if opts.init == "ridge" else 0
        self.warm_start_steps, self.warm_start_lr = opts.init_steps, opts.init_lr
        self.warm_start_reverts, self.warm_start_moves = opts.init_reverts, opts.init_moves
        self.error, self.error_floor = opts.init_error, opts.init_error_floor
        self.warm_start_gaps = opts.init_error == "gap"
        self.vector = (MLPActionEncoder(action_dim=action_dim, vocab_size=vocab_size, pad_id=pad_id, dim=dim,
                                        heads=heads, options={"hidden": opts.hidden})
                       if opts.with_vector else None)

    def linear_features(self, inputs: ActionInputs) -> torch.Tensor:
        if inputs.before is None or inputs.after is None:
            raise WmkitError("the token_bag action encoder reads the states' token ids; pass ActionInputs "
                             "with before and after")
        features = [removed_added_counts(inputs.before, inputs.after, self.pad_id, self.buckets)]
        if self.positions:
            features.append(position_shifts(inputs.before, inputs.after, self.pad_id, self.buckets))
        if self.spans:
            features.append(span_count_changes(inputs.before, inputs.after, self.pad_id, self.buckets, self.spans))
        return torch.cat(features, dim=1) if len(features) > 1 else features[0]

    def order_features(self, inputs: ActionInputs) -> torch.Tensor | None:
        if self.order is None:
            return None
        if inputs.before is None or inputs.after is None:
            raise WmkitError("the token_bag action encoder reads the states' token ids; pass ActionInputs "
                             "with before and after")
        return order_features(inputs.before, inputs.after, self.pad_id, self.buckets, self.order_frequencies)

    @torch.no_grad()
    def set_order(self, weights: torch.Tensor) -> None:
        self.order.weight.copy_(weights.T)

    @torch.no_grad()
    def set_linear(self, weights: torch.Tensor, bias: torch.Tensor, *, residual_rms: float) -> None:
        self.counts.weight.copy_(weights.T)
        self.bias.copy_(bias)
        if self.head is not None:
            self.head_scale.fill_(residual_rms)
        if self.vector is not None:  # the action vector's MLP starts silent, so the embedding is the fit
            last = self.vector.get_submodule("2")
            last.weight.zero_()
            last.bias.zero_()

    def residual_parameters(self) -> list[nn.Parameter]:
        if self.head is None:
            return []
        extra = [] if self.tokens is None else [*self.tokens.parameters(), *self.token_positions.parameters()]
        return [*self.head.parameters(), *extra]

    def token_position_features(self, inputs: ActionInputs) -> torch.Tensor:
        """``[B, head_tokens]``: Σ_i t(after_i) ⊙ q(i) − Σ_i t(before_i) ⊙ q(i), over √L (L: the window);
        positions holding the same token on both sides cancel."""
        length = inputs.before.shape[1]
        table = sinusoidal_positions(length + 1, self.token_positions.in_features)[1:].to(inputs.before.device)
        where = self.token_positions(table)
        total = lambda tokens: (self.tokens(tokens.long()) * where).sum(dim=1)  # noqa: E731
        return (total(inputs.after) - total(inputs.before)) / math.sqrt(length)

    def _parts(self, inputs: ActionInputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The linear embedding (plus the action vector's MLP) and each mlp head's scaled output."""
        linear = self.counts(self.linear_features(inputs)) + self.bias
        if self.order is not None:  # computed for the reorderings only: a few in a hundred edits
            rows = reorderings(inputs.before, inputs.after, self.pad_id, self.buckets).nonzero().squeeze(1)
            if len(rows):
                features = order_features(inputs.before[rows], inputs.after[rows], self.pad_id, self.buckets,
                                          self.order_frequencies)
                linear = linear.index_add(0, rows, self.order(features))
        fits = []
        if self.head is not None:
            if inputs.state is None:
                raise WmkitError("the token_bag action encoder's mlp head reads target(before); pass "
                                 "ActionInputs with state (WorldModel.embed_action does)")
            scale = self.head_scale
            x = [self.state_scale * inputs.state, linear / scale]
            if self.tokens is not None:
                x.append(self.token_position_features(inputs))
            x = torch.cat(x, dim=1)
            fits = [scale * head(x) for head in (self.head if isinstance(self.head, nn.ModuleList) else [self.head])]
        if self.vector is not None:
            linear = linear + self.vector(inputs)
        return linear, fits

    def forward(self, inputs: ActionInputs) -> torch.Tensor:
        linear, fits = self._parts(inputs)
        return linear + torch.stack(fits).mean(0) if fits else linear

    def residual_loss(self, inputs: ActionInputs, change: torch.Tensor,
                      gap: torch.Tensor | None = None) -> torch.Tensor:
        # each head's own error, so the heads stay independent fits whose average is the embedding
        linear, fits = self._parts(inputs)
        if self.error == "absolute":
            return torch.stack([torch.nn.functional.mse_loss(linear + fit, change) for fit in fits]).mean()
        # KNN@1 loses a pair once its error passes about half the distance to its own before (relative) or to
        # the nearest other state (gap), so weigh errors by that: 1 / (size + floor * median size), normalised
        # to mean 1 so the loss keeps the scale of an MSE
        size = change.pow(2).sum(dim=1) if self.error == "relative" else gap
        weight = 1.0 / (size + self.error_floor * size.median())
        weight = weight / weight.mean()
        return torch.stack([(weight * (linear + fit - change).pow(2).mean(dim=1)).mean() for fit in fits]).mean()
