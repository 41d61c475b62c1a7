"""Dropout on the CPU without its two slow paths (issue 11).

The semantics are PyTorch's: every element is kept with probability ``1 − p`` and scaled by
``1 / (1 − p)``. Two things are faster than the stock operators on the CPU:

- **The mask.** ``torch.bernoulli_`` draws one double per element from the single-threaded
  generator (about 30 ms for 2M elements on one core here); :func:`keep_mask` draws 64 random bits
  per two elements from the same seeded generator and compares 32-bit halves against
  ``p·2³²`` (about 5× fewer generator calls). ``p`` is thereby rounded to a multiple of 2⁻³².
- **Attention-weight dropout.** ``F.scaled_dot_product_attention`` leaves its fused CPU kernel as
  soon as ``dropout_p > 0`` and autograd then keeps every ``[B, H, S, S]`` probability tensor (15 GB
  at batch 128, 512 tokens). :func:`attention_with_dropout` computes the same result in chunks of
  the batch and keeps only a one-byte mask and the row log-sum-exp, recomputing the
  probabilities in the backward pass, as memory-efficient attention kernels do.

On any other device the stock operators are used: they are fast there.
"""

from __future__ import annotations

import contextlib
import math
import threading

import torch
import torch.nn.functional as F
from torch import nn

#: bytes of one ``[b, H, S, S]`` float32 chunk the attention works on at a time
CHUNK_BYTES = 64 * 2**20

_stock = threading.local()


@contextlib.contextmanager
def stock_attention():
    """Within the block :func:`attention_with_dropout` is ``F.scaled_dot_product_attention``: a FLOP
    counter then sees the standard algorithm's matmuls, not this module's backward recomputation."""
    previous = getattr(_stock, "on", False)
    _stock.on = True
    try:
        yield
    finally:
        _stock.on = previous


def _drop_mask(shape, p: float, device: torch.device | str = "cpu", out: torch.Tensor | None = None) -> torch.Tensor:
    """True with probability ``p`` (rounded to 2⁻³²): 32 random bits per element, two per draw."""
    n = math.prod(shape)
    bits = torch.empty(((n + 1) // 2,), dtype=torch.int64, device=device).random_(-2**63, None)
    halves = bits.view(torch.int32)[:n].view(shape)  # uniform over [-2³¹, 2³¹)
    threshold = -2**31 + round(p * 2**32)
    if threshold > 2**31 - 1:  # p rounds to 1: drop everything (an int32 comparison would overflow)
        return torch.ones(shape, dtype=torch.bool, device=device) if out is None else out.fill_(True)
    return torch.lt(halves, threshold, out=out) if out is not None else halves < threshold


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A bool tensor of ``shape``, each element True with probability ``1 − p`` (p rounded to 2⁻³²),
    drawn from the default generator of ``device`` (so ``torch.manual_seed`` and RNG-state
    checkpoints govern it)."""
    return ~_drop_mask(shape, p, device)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with :func:`keep_mask`'s faster mask on the CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return (x * (1.0 / (1.0 - p))).masked_fill_(_drop_mask(x.shape, p, x.device), 0.0)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same name, repr and state dict) with :func:`dropout`'s CPU mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def _chunks(b: int, heads: int, s: int) -> list[slice]:
    rows = max(1, CHUNK_BYTES // max(1, heads * s * s * 4))
    return [slice(i, min(b, i + rows)) for i in range(0, b, rows)]


class _AttentionWithDropout(torch.autograd.Function):
    """softmax(q kᵀ/√d + bias) with dropout, times v; saves q, k, v, out, the row log-sum-exp and
    the one-byte drop mask, and recomputes the probabilities in the backward pass.

    The dropout scale 1/(1−p) is folded into the saved log-sum-exp and 1/√d into q, so each
    ``[b, H, S, S]`` chunk is touched as few times as possible.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, q, k, v, bias, p, keep):
        b, h, s, d = q.shape
        acc = torch.promote_types(q.dtype, torch.float32)
        scaled_q = q * (1.0 / math.sqrt(d))
        out = torch.empty_like(v)
        # log-sum-exp minus log(1/(1−p)): exp(scores − shifted_lse) is P/(1−p)
        shifted_lse = torch.empty(b, h, s, 1, dtype=acc, device=q.device)
        drop = ~keep if keep is not None else torch.empty(b, h, s, s, dtype=torch.bool, device=q.device)
        for part in _chunks(b, h, s):
            scores = torch.matmul(scaled_q[part], k[part].transpose(-1, -2)).to(acc)
            if bias is not None:
                scores.add_(bias[part])
            shifted_lse[part] = torch.logsumexp(scores, dim=-1, keepdim=True) + math.log1p(-p)
            probs = scores.sub_(shifted_lse[part]).exp_()
            if keep is None:
                _drop_mask(probs.shape, p, out=drop[part])
            out[part] = torch.matmul(probs.masked_fill_(drop[part], 0.0).to(v.dtype), v[part])
        ctx.save_for_backward(scaled_q, k, v, bias if bias is not None else torch.empty(0), out, shifted_lse, drop)
        ctx.p, ctx.has_bias, ctx.scale = p, bias is not None, 1.0 / math.sqrt(d)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out):
        scaled_q, k, v, bias, out, shifted_lse, drop = ctx.saved_tensors
        b, h, s, _ = scaled_q.shape
        acc = torch.promote_types(scaled_q.dtype, torch.float32)
        dq, dk, dv = torch.empty_like(scaled_q), torch.empty_like(k), torch.empty_like(v)
        # softmax backward: dS = P ∘ (dP − rowsum(dP ∘ P)), and rowsum(dP ∘ P) = rowsum(dO ∘ O);
        # with P = (1−p)·exp(scores − shifted_lse) the correction joins as −(1−p)·rowsum(dO ∘ O)
        correction = (grad_out.to(acc) * out.to(acc)).sum(-1, keepdim=True).mul_(-(1.0 - ctx.p))
        for part in _chunks(b, h, s):
            scores = torch.matmul(scaled_q[part], k[part].transpose(-1, -2)).to(acc)
            if ctx.has_bias:
                scores.add_(bias[part])
            scaled_probs = scores.sub_(shifted_lse[part]).exp_()  # P/(1−p), recomputed
            dropped = scaled_probs.masked_fill(drop[part], 0.0)  # what the forward multiplied v by
            g = grad_out[part]
            dv[part] = torch.matmul(dropped.transpose(-1, -2).to(g.dtype), g)
            dscores = torch.matmul(g, v[part].transpose(-1, -2)).to(acc).mul_(dropped)
            dscores = dscores.addcmul_(scaled_probs, correction[part]).to(scaled_q.dtype)
            dq[part] = torch.matmul(dscores, k[part]).mul_(ctx.scale)
            dk[part] = torch.matmul(dscores.transpose(-1, -2), scaled_q[part])
        return dq, dk, dv, None, None, None


def attention_with_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep_keys: torch.Tensor | None,
                           p: float, *, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention with dropout ``p`` on the attention weights.

    ``q, k, v``: ``[B, H, S, d]``; ``keep_keys``: ``[B, 1, 1, S]`` bool, True where a key may be
    attended (None: all); ``keep``: a ``[B, H, S, S]`` bool dropout mask to use instead of a drawn one
    (tests). Equal to ``F.scaled_dot_product_attention(q, k, v, attn_mask=keep_keys, dropout_p=p)``
    in distribution; on a non-CPU device it is that call.
    """
    if q.device.type != "cpu" or getattr(_stock, "on", False):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep_keys, dropout_p=p)
    bias = None
    if keep_keys is not None:
        bias = torch.zeros(keep_keys.shape, dtype=torch.float32, device=q.device).masked_fill_(~keep_keys, -math.inf)
    return _AttentionWithDropout.apply(q, k, v, bias, float(p), keep)
