"""The looped-transformer latent predictor of CodeWM 2 (reference §3, docs/reference.md#s3)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from wmkit.components import Predictor
from wmkit.layers import PreLNBlock
from wmkit_predictors.plugin import LoopedPredictorOptions


class LoopedTransformerPredictor(Predictor):
    """ẑ = LN(token 0 of Blocks([z_state, a])) (reference §3, docs/reference.md#s3).

    The input is the 2-token sequence [state, action embedding] with no position or type
    embedding. Block 1 is applied ``loops`` times, then block 2 ``loops`` times, and so on for
    ``blocks`` distinct :class:`~wmkit.layers.PreLNBlock`. The output is LayerNorm of token 0
    (``output = "norm"``), or with ``output = "update"`` token 0 minus the input state: the change
    the blocks wrote, free to be as small or large as an edit is. ``add_action`` adds the action
    embedding to that output (a direct path from the action); ``zero_init`` starts the blocks' residual
    branches at 0, so the first update is exactly that action embedding. With ``residual`` the prediction is
    ``state + output`` (the residual-predictor variant).
    2 blocks of D=128 plus the output LayerNorm: 396,800 parameters.
    """

    def __init__(self, *, dim: int, heads: int, options: Mapping[str, Any]):
        super().__init__(dim=dim, heads=heads, options=options)
        opts = LoopedPredictorOptions.of(options)
        self.loops = opts.loops
        self.residual = opts.residual
        self.update_output = opts.output == "update"
        self.add_action = opts.add_action
        self.blocks = nn.ModuleList(PreLNBlock(dim, heads, opts.mlp_ratio, opts.dropout) for _ in range(opts.blocks))
        self.norm = nn.LayerNorm(dim)
        if opts.zero_init:
            for block in self.blocks:
                for layer in (block.attn.out_proj, block.mlp[3]):
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.stack([state, action.to(state.dtype)], dim=1)
        for block in self.blocks:
            for _ in range(self.loops):
                x = block(x)
        out = x[:, 0] - state if self.update_output else self.norm(x[:, 0])
        if self.add_action:
            out = out + action.to(out.dtype)
        return state + out if self.residual else out
