"""The looped-transformer state encoder of CodeWM 2 (reference §3, docs/reference.md#s3)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from wmkit.components import Encoder, EncoderOutput
from wmkit.cpu_dropout import Dropout
from wmkit.errors import DataError
from wmkit.layers import LEARNED_VECTOR_STD, AttentionPool, PreLNBlock, sinusoidal_positions
from wmkit_encoders.plugin import LoopedEncoderOptions


class LoopedTransformerEncoder(Encoder):
    """Token ids ``[B, L]`` → pooled readout ``z`` ``[B, D]`` after each of ``loops`` passes.

    Pipeline (reference §3, docs/reference.md#s3): token embedding; a learnable CLS vector (N(0, 0.02²))
    prepended; fixed sinusoidal positions for ``max_len + 1`` positions added; dropout; then **one**
    :class:`~wmkit.layers.PreLNBlock` applied ``loops`` times with shared weights. After every
    loop the same readout (``pool`` then LayerNorm) is taken, so ``loops[k-1]`` is loop k's
    embedding and ``loops[-1]`` is ``z``.

    Options (``[model.encoder]``): ``pool`` attn | cls | mean; ``mask_padding`` (default False,
    as the reference, which attends PAD); ``attention_dropout`` (default −1: as ``dropout``, the reference; 0
    makes CPU training at 512 tokens ~3x faster and ~3x leaner). With ``mask_padding`` PAD keys are ignored by the block's
    attention and by the attn/mean readout; the CLS position is never masked. The model-wide
    ``mlp_ratio`` and ``dropout`` arrive in ``options`` too (the kind shares them: :mod:`wmkit.kinds`).

    The position table is a non-persistent buffer (``positions``): it is rebuilt from ``max_len``
    and ``dim``, not stored in checkpoints, and counts only toward the "inference export" row of
    :meth:`wmkit.model.WorldModel.parameter_breakdown` (65,664 floats for 513 × 128).
    """

    def __init__(self, *, vocab_size: int, max_len: int, pad_id: int, dim: int, heads: int,
                 loops: int, options: Mapping[str, Any]):
        super().__init__(vocab_size=vocab_size, max_len=max_len, pad_id=pad_id, dim=dim, heads=heads,
                         loops=loops, options=options)
        opts = LoopedEncoderOptions.of(options)
        self.max_len = max_len
        self.pad_id = pad_id
        self.num_loops = loops
        self.pool = opts.pool
        self.mask_padding = opts.mask_padding
        dropout = opts.dropout

        self.embedding = nn.Embedding(vocab_size, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * LEARNED_VECTOR_STD)
        self.register_buffer("positions", sinusoidal_positions(max_len + 1, dim), persistent=False)
        self.dropout = Dropout(dropout)
        self.block = PreLNBlock(dim, heads, opts.mlp_ratio, dropout,
                                attention_dropout=None if opts.attention_dropout < 0 else opts.attention_dropout)
        self.attn_pool = AttentionPool(dim) if self.pool == "attn" else None
        self.norm = nn.LayerNorm(dim)

    def readout(self, hidden: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        """Pool ``[B, S+1, D]`` to ``[B, D]`` (attn / cls / mean), then LayerNorm."""
        if self.pool == "attn":
            pooled = self.attn_pool(hidden, padding_mask)
        elif self.pool == "cls":
            pooled = hidden[:, 0]
        elif padding_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            keep = (~padding_mask).unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1)
        return self.norm(pooled)

    def forward(self, tokens: torch.Tensor) -> EncoderOutput:
        batch, length = tokens.shape
        if length > self.max_len:
            raise DataError(f"encoder input has {length} tokens per state but the model was built for "
                            f"data.max_len = {self.max_len}; re-tokenize or rebuild the model")
        hidden = self.embedding(tokens)
        hidden = torch.cat([self.cls.expand(batch, -1, -1).to(hidden.dtype), hidden], dim=1)
        hidden = self.dropout(hidden + self.positions[: length + 1])
        padding_mask = None
        if self.mask_padding:
            cls_kept = torch.zeros(batch, 1, dtype=torch.bool, device=tokens.device)
            padding_mask = torch.cat([cls_kept, tokens == self.pad_id], dim=1)
        readouts = []
        for _ in range(self.num_loops):
            hidden = self.block(hidden, padding_mask)
            readouts.append(self.readout(hidden, padding_mask))
        return EncoderOutput(z=readouts[-1], loops=readouts)
