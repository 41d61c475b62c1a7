"""The eight transformations an engineer makes to a kernel, as edits of its parameter record.

Each first forces the base parameters into a state the transformation applies to (unrolling off
before "unroll", say), then changes exactly one knob. Records are frozen: both the forced base and
the edited copy are returned.
"""

from __future__ import annotations

import random
from dataclasses import replace

from .params import DTYPES, EPILOGUES, KernelParams, _pick


def _other(rng: random.Random, choices, current):
    return _pick(rng, [c for c in choices if c != current])


def _scale_pow2(rng: random.Random, value: int, low: int, high: int) -> int:
    options = [v for v in (value * 2, value // 2) if low <= v <= high]
    return _pick(rng, options)


def prepare_and_apply(rng: random.Random, transform: str, base: KernelParams) -> tuple[KernelParams, KernelParams]:
    """``(base, edited)``: ``base`` forced into a state ``transform`` applies to, and the edited copy."""
    lang, family = base.lang, base.family
    new = base
    if transform == "tile_size":
        if lang == "triton" and family == "gemm":
            key = _pick(rng, ("block_m", "block_n", "block_k"))
            new = replace(base, **{key: _scale_pow2(rng, getattr(base, key), 16, 256)})
        elif lang == "cuda" and family == "gemm":
            new = replace(base, block=_scale_pow2(rng, base.block, 8, 32))
        else:
            low, high = (64, 1024) if lang == "cuda" else (128, 4096)
            new = replace(base, block=_scale_pow2(rng, base.block, low, high))
    elif transform == "launch_config":
        if lang == "cuda":
            new = replace(base, min_blocks_per_sm=_other(rng, (1, 2, 4, 8), base.min_blocks_per_sm))
        elif rng.random() < 0.5 or base.num_stages == 0:
            new = replace(base, num_warps=_other(rng, (1, 2, 4, 8, 16), base.num_warps))
        else:
            new = replace(base, num_stages=_other(rng, (1, 2, 3, 4, 5), base.num_stages))
    elif transform == "unroll":
        base = replace(base, unroll=False)
        if lang == "triton" and family == "elementwise" and base.iters == 1:
            base = replace(base, iters=_pick(rng, (2, 4)))
        new = replace(base, unroll=True)
    elif transform == "vectorize":
        base = replace(base, vectorize=False)
        new = replace(base, vectorize=True)
    elif transform == "shared_mem":
        if lang == "triton":
            base = replace(base, block_ptr=False)
            new = replace(base, block_ptr=True)
        elif family == "reduction":
            base = replace(base, reduce="atomic")
            new = replace(base, reduce="shared")
        elif family == "gemm":
            base = replace(base, shared_tiles=False)
            new = replace(base, shared_tiles=True)
        else:
            base = replace(base, cache_row=False)
            new = replace(base, cache_row=True)
    elif transform == "warp_shuffle":
        base = replace(base, reduce="shared")
        new = replace(base, reduce="shuffle")
    elif transform == "epilogue_fusion":
        base = replace(base, epilogue="none")
        new = replace(base, epilogue=_pick(rng, EPILOGUES[family]))
    elif transform == "dtype":
        new = replace(base, dtype=_other(rng, DTYPES, base.dtype))
    else:  # pragma: no cover - guarded by SUPPORTED
        raise ValueError(transform)
    return base, new
