"""Counting the FLOPs of a call with torch's own formulas, plus CPU attention, which they lack.

torch's ``flop_registry`` (the table ``FlopCounterMode`` reads) has no entry for the CPU flash
attention kernel, so a plain count misses every inference-time and dropout-free attention on the
CPU; :class:`FlopCount` adds it (4·B·H·S_q·S_k·d forward, twice that backward: two matmuls, and
four). It is a dispatch mode rather than ``FlopCounterMode`` because the latter's module tracking
fails under ``inference_mode``.
"""

from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

_aten = torch.ops.aten


def _attention_forward_flops(q, k) -> int:
    *batch, s_q, d = q.shape
    return 4 * math.prod(batch) * s_q * k.shape[-2] * d


_CPU_ATTENTION = {
    _aten._scaled_dot_product_flash_attention_for_cpu: lambda args: _attention_forward_flops(args[0], args[1]),
    # backward(grad_out, q, k, v, ...): dV, dP, dQ, dK, four matmuls of the forward's size
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: lambda args: 2 * _attention_forward_flops(args[1], args[2]),
}


class FlopCount(TorchDispatchMode):
    """``with FlopCount() as count: ...`` then ``count.total``: matmul, convolution and attention FLOPs."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        formula = flop_registry.get(packet)
        if formula is None and packet not in _CPU_ATTENTION:
            with self:  # a composite (linear, SDPA): count the operators it is made of
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        if packet in _CPU_ATTENTION:
            self.total += _CPU_ATTENTION[packet](args)
        elif formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out
