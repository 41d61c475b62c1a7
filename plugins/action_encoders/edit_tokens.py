"""An action encoder that reads the edit itself: the tokens it removed and added."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from wmkit.components import ActionEncoder, ActionInputs
from wmkit.edits import edit_window
from wmkit.errors import WmkitError
from wmkit.layers import LEARNED_VECTOR_STD, PreLNBlock
from wmkit_action_encoders.mlp import MLPActionEncoder
from wmkit_action_encoders.plugin import EditTokensOptions


class EditTokenActionEncoder(ActionEncoder):
    """Embeds :func:`wmkit.edits.edit_window` of the two states with learned positions, runs
    ``layers`` pre-LN blocks (PAD masked), mean-pools the non-PAD tokens and applies LayerNorm;
    with ``with_vector`` the paper's MLP of the action vector is added.

    The paper's 15-D action says only what kind of edit happened; this one says what changed, so the
    predictor can know the content of the after state.
    """

    inputs: ClassVar[tuple[str, ...]] = ("vector", "edit_tokens")

    def __init__(self, *, action_dim: int, vocab_size: int, pad_id: int, dim: int, heads: int,
                 options: Mapping[str, Any]):
        super().__init__(action_dim=action_dim, vocab_size=vocab_size, pad_id=pad_id, dim=dim, heads=heads,
                         options=options)
        opts = EditTokensOptions.of(options)
        self.window, self.pad_id = opts.window, int(pad_id)
        # two marker ids past the domain's vocabulary: "removed tokens follow", "added tokens follow"
        self.delete_id, self.insert_id = vocab_size, vocab_size + 1
        self.embedding = nn.Embedding(vocab_size + 2, dim)
        self.positions = nn.Parameter(torch.randn(self.window, dim) * LEARNED_VECTOR_STD)
        self.blocks = nn.ModuleList(PreLNBlock(dim, heads, opts.mlp_ratio, opts.dropout) for _ in range(opts.layers))
        self.norm = nn.LayerNorm(dim)
        self.vector = (MLPActionEncoder(action_dim=action_dim, vocab_size=vocab_size, pad_id=pad_id, dim=dim,
                                        heads=heads, options={"hidden": opts.hidden})
                       if opts.with_vector else None)

    def forward(self, inputs: ActionInputs) -> torch.Tensor:
        if inputs.before is None or inputs.after is None:
            raise WmkitError("the edit_tokens action encoder reads the states' token ids; pass ActionInputs "
                             "with before and after")
        tokens = edit_window(inputs.before, inputs.after, self.pad_id, length=self.window,
                             delete_id=self.delete_id, insert_id=self.insert_id)
        padding = tokens == self.pad_id
        x = self.embedding(tokens) + self.positions
        for block in self.blocks:
            x = block(x, padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        out = self.norm((x * keep).sum(1) / keep.sum(1).clamp(min=1.0))
        if self.vector is not None:
            out = out + self.vector(inputs)
        return out
