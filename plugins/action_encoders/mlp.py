"""The paper's action encoder: an MLP over the domain's action vector (reference §3, docs/reference.md#s3)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from wmkit.components import ActionEncoder, ActionInputs
from wmkit_action_encoders.plugin import MLPOptions


class MLPActionEncoder(ActionEncoder):
    """h(a) = Linear(A, hidden) → GELU → Linear(hidden, D). With A=15, D=128: 18,560 parameters."""

    inputs: ClassVar[tuple[str, ...]] = ("vector",)

    def __init__(self, *, action_dim: int, vocab_size: int, pad_id: int, dim: int, heads: int,
                 options: Mapping[str, Any]):
        super().__init__(action_dim=action_dim, vocab_size=vocab_size, pad_id=pad_id, dim=dim, heads=heads,
                         options=options)
        hidden = MLPOptions.of(options).hidden
        # submodules named 0, 1, 2 keep the parameter names of checkpoints written by wmkit 0.1
        for i, layer in enumerate((nn.Linear(action_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))):
            self.add_module(str(i), layer)

    def forward(self, inputs: ActionInputs) -> torch.Tensor:
        x = inputs.vector.float()
        for layer in self.children():
            x = layer(x)
        return x
