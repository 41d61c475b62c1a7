"""Core building blocks shared by the built-in encoder and predictor, and reusable by plugins.

- :class:`PreLNBlock`: the pre-LayerNorm transformer block the reference loops
  (reference §3, docs/reference.md#s3);
- :func:`sinusoidal_positions`: the fixed sin/cos position table;
- :class:`AttentionPool`: one learnable query attending over a sequence (the "attn" readout).

Initialisation is PyTorch's default except for the learnable vectors the reference draws from
N(0, 0.02²) (the CLS token and the pooling query).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.cpu_dropout import Dropout, attention_with_dropout

#: standard deviation of the learnable CLS token and pooling query (reference §3, docs/reference.md#s3)
LEARNED_VECTOR_STD = 0.02


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameters, names and initialisation
    (``in_proj_weight`` [3D, D] Xavier-uniform, ``in_proj_bias`` zeros, ``out_proj`` Linear with zero
    bias), computed through ``F.scaled_dot_product_attention``: about twice as fast on CPU for the
    same result (see ``tests/test_model.py``)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, s, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, s, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        keep = None if padding_mask is None else (~padding_mask)[:, None, None, :]
        if self.training and self.dropout > 0:
            out = attention_with_dropout(q, k, v, keep, self.dropout)  # SDPA's CPU dropout path is slow
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.out_proj(out.transpose(1, 2).reshape(b, s, d))


class PreLNBlock(nn.Module):
    """``x + MHA(LN x)`` then ``x + MLP(LN x)`` (reference §3, docs/reference.md#s3).

    MHA has ``heads`` heads and attention dropout ``attention_dropout`` (default: ``dropout``); the MLP is
    Linear(D, D·mlp_ratio) → GELU (erf form) → Dropout → Linear(D·mlp_ratio, D) → Dropout.
    With D=128, 4 heads, mlp_ratio 4 it has 198,272 parameters.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.1,
                 attention_dropout: float | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        # None means "same as dropout"; on the CPU attention-weight dropout runs through
        # wmkit.cpu_dropout (SDPA's own dropout path materialises every probability tensor)
        self.attn = SelfAttention(dim, heads, dropout=dropout if attention_dropout is None else attention_dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = dim * mlp_ratio
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(hidden, dim),
            Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, S, D]``; ``padding_mask``: ``[B, S]`` bool, True where a key is ignored."""
        h = self.norm1(x)
        x = x + self.attn(h, padding_mask)
        return x + self.mlp(self.norm2(x))


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed ``[length, dim]`` table: even columns sin(p·ω_i), odd columns cos(p·ω_i).

    ω_i = 10000^(−2i/dim) for column pair i (Vaswani et al.). Row 0 is the CLS position.
    """
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class AttentionPool(nn.Module):
    """One learnable query (N(0, 0.02²)) attends over all positions through a 1-head
    ``nn.MultiheadAttention`` and returns the attended vector ``[B, D]``
    (reference §3 (docs/reference.md#s3) "attn").

    ``padding_mask`` (``[B, S]``, True = ignore) excludes positions; the caller must leave at
    least one position unmasked per row (the CLS position in the built-in encoder).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * LEARNED_VECTOR_STD)
        self.attn = nn.MultiheadAttention(dim, 1, batch_first=True)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        query = self.query.expand(x.shape[0], -1, -1)
        out, _ = self.attn(query, x, x, key_padding_mask=padding_mask, need_weights=False)
        return out.squeeze(1)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements of ``module``."""
    return int(sum(p.numel() for p in module.parameters()))
