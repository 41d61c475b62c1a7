"""What a kernel template reads: one typed parameter record per kernel, and how it is drawn.

:class:`KernelParams` holds what every kernel has (names, dtype, epilogue, unrolling);
:class:`CudaParams` and :class:`TritonParams` add each language's knobs. Records are frozen: a
transformation (:mod:`wmkit_kernel.transforms`) makes an edited copy. :func:`sample_params` draws
one from a pair's own ``random.Random``; the order of the draws is part of the generated data, so it
must not change without a new ``GENERATOR_VERSION``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

EPILOGUES = {
    "elementwise": ("scale", "bias", "residual", "clamp", "relu"),
    "reduction": ("scale", "weighted"),
    "softmax": ("scale", "log"),
    "layernorm": ("residual", "relu", "gelu"),
    "gemm": ("bias", "relu", "bias_relu", "alpha", "gelu"),
}


def _pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))]


OPS = ("relu", "gelu", "silu", "sigmoid", "square", "abs", "exp", "tanh", "softplus")
REDUCE_OPS = ("sum", "sumsq", "l1")
DTYPES = ("f32", "f16", "bf16")
PREFIXES = ("", "fused_", "fast_", "my_", "apply_", "batched_", "opt_", "simple_", "k_")
SUFFIXES = ("_kernel", "_fwd", "_forward", "_impl", "_op", "_kern", "")
FAMILY_BASES = {
    "elementwise": None,  # the op name
    "reduction": ("reduce", "row_reduce", "total", "accumulate", "norm"),
    "softmax": ("softmax", "row_softmax", "softmax_rows", "attn_softmax", "masked_softmax"),
    "layernorm": ("layernorm", "layer_norm", "ln", "norm_affine", "rownorm"),
    "gemm": ("gemm", "matmul", "mm", "linear", "dense", "sgemm"),
}


def _kernel_name(rng: random.Random, family: str, op: str) -> str:
    base = op if family == "elementwise" else _pick(rng, FAMILY_BASES[family])
    if family == "reduction":
        base = f"{base}_{op}"
    return f"{_pick(rng, PREFIXES)}{base}{_pick(rng, SUFFIXES)}".strip("_") or base


def _sample_common(rng: random.Random, lang: str, family: str) -> dict[str, Any]:
    """The fields of :class:`KernelParams`, drawn from ``rng`` (the order of the draws is the data)."""
    op = _pick(rng, REDUCE_OPS if family == "reduction" else OPS)
    return {
        "lang": lang, "family": family, "op": op, "name": _kernel_name(rng, family, op),
        "dtype": _pick(rng, DTYPES), "epilogue": "none" if rng.random() < 0.5 else _pick(rng, EPILOGUES[family]),
        "unroll": rng.random() < 0.3, "unroll_factor": _pick(rng, (2, 4, 8)), "vectorize": rng.random() < 0.3,
        "unroll_name": _pick(rng, ("UNROLL", "UNROLL_FACTOR", "UNROLL_N", "N_UNROLL")),
        "epilogue_fn_format": _pick(rng, ("{}_epilogue", "apply_{}", "epilogue_{}")),
        "clamp_limit": _pick(rng, ("6.0", "10.0", "1.0", "20.0")),
    }


@dataclass(frozen=True)
class KernelParams:
    """The parameters every kernel template reads."""

    lang: str
    family: str
    #: the elementwise op, or the reduction's (sum, sumsq, l1)
    op: str
    #: the kernel's function name
    name: str
    #: f32, f16 or bf16
    dtype: str
    #: "none" or one of EPILOGUES[family]
    epilogue: str
    unroll: bool
    unroll_factor: int
    #: the name of the unroll-factor constant
    unroll_name: str
    #: vectorised loads (CUDA vector types; Triton contiguity hints)
    vectorize: bool
    #: format of an activation epilogue's helper name, e.g. "apply_{}"
    epilogue_fn_format: str
    #: the bound of a clamp epilogue (source text)
    clamp_limit: str


@dataclass(frozen=True)
class CudaParams(KernelParams):
    """A CUDA C++ kernel's knobs and names."""

    #: how constants are written: define, constexpr or static
    const_style: str
    restrict: bool
    #: the launcher takes a cudaStream_t
    stream: bool
    #: after a launch: none, c10 (C10_CUDA_KERNEL_LAUNCH_CHECK) or cuda (cudaGetLastError)
    launch_check: str
    #: the element-count parameter's name
    size_name: str
    #: the element-count parameter's type
    size_type: str
    #: (input, output) pointer names
    pointer_names: tuple[str, str]
    scale_name: str
    bias_name: str
    residual_name: str
    #: the second __launch_bounds__ argument (0: no __launch_bounds__)
    min_blocks_per_sm: int
    #: threads per block (the tile edge for gemm)
    block: int
    items_per_thread: int
    #: grid-size cap of grid-stride loops
    max_blocks: int
    #: block reduction: atomic, shared (tree) or shuffle (warp shuffles)
    reduce: str
    #: softmax / layernorm keep their row in shared memory
    cache_row: bool
    #: gemm tiles through shared memory
    shared_tiles: bool
    shared_buffer_name: str
    warp_buffer_name: str
    eps: str
    tile_name: str
    include_cstdint: bool


@dataclass(frozen=True)
class TritonParams(KernelParams):
    """A Triton kernel's knobs and names."""

    #: (input, output) pointer names
    pointer_names: tuple[str, str]
    size_name: str
    pid_name: str
    offsets_name: str
    scale_name: str
    #: BLOCK_SIZE (0 for gemm, which has block_m / block_n / block_k)
    block: int
    block_m: int
    block_n: int
    block_k: int
    #: blocks per program (elementwise)
    iters: int
    num_warps: int
    #: 0: not passed
    num_stages: int
    #: block sizes bound to host-side constants first
    host_constants: bool
    autotune: bool
    #: gemm / layernorm use block pointers
    block_ptr: bool
    eps: str
    import_math: bool


def _sample_cuda(rng: random.Random, family: str, common: dict[str, Any]) -> CudaParams:
    ptrs = _pick(rng, (("x", "y"), ("in", "out"), ("src", "dst"), ("input", "output"), ("a", "b")))
    return CudaParams(
        **common,
        const_style=_pick(rng, ("define", "constexpr", "static")), restrict=rng.random() < 0.6,
        stream=rng.random() < 0.6, launch_check=_pick(rng, ("none", "c10", "cuda")),
        size_name=_pick(rng, ("n", "N", "numel", "size", "count", "total")),
        size_type=_pick(rng, ("int", "int64_t", "size_t")), pointer_names=ptrs,
        scale_name=_pick(rng, ("alpha", "scale", "factor")), bias_name=_pick(rng, ("bias", "shift", "b_vec")),
        residual_name=_pick(rng, ("residual", "res", "skip")), min_blocks_per_sm=_pick(rng, (0, 0, 1, 2, 4)),
        block=_pick(rng, (64, 128, 256, 512)) if family != "gemm" else _pick(rng, (8, 16, 32)),
        items_per_thread=_pick(rng, (2, 4, 8)), max_blocks=_pick(rng, (256, 512, 1024, 2048)),
        reduce=_pick(rng, ("atomic", "shared", "shuffle")) if family == "reduction"
        else _pick(rng, ("shared", "shuffle")),
        cache_row=rng.random() < 0.3, shared_tiles=rng.random() < 0.5,
        shared_buffer_name=_pick(rng, ("buf", "smem", "sdata", "shm", "scratch")),
        warp_buffer_name=_pick(rng, ("warp_buf", "warp_sums", "partials", "warp_partial")),
        eps=_pick(rng, ("1e-5f", "1e-6f", "1e-12f")), tile_name=_pick(rng, ("TILE", "TILE_SIZE", "BLOCK_DIM", "BLOCK")),
        include_cstdint=rng.random() < 0.5,
    )


def _sample_triton(rng: random.Random, family: str, common: dict[str, Any]) -> TritonParams:
    return TritonParams(
        **common,
        pointer_names=_pick(rng, (("x_ptr", "out_ptr"), ("X", "Y"), ("in_ptr", "out_ptr"),
                                  ("input_ptr", "output_ptr"), ("src_ptr", "dst_ptr"))),
        size_name=_pick(rng, ("n_elements", "N", "numel", "n")), pid_name=_pick(rng, ("pid", "program_id", "block_id")),
        offsets_name=_pick(rng, ("offsets", "offs", "idx")), scale_name=_pick(rng, ("alpha", "scale", "factor")),
        block=_pick(rng, (256, 512, 1024, 2048)) if family != "gemm" else 0,
        block_m=_pick(rng, (32, 64, 128)), block_n=_pick(rng, (32, 64, 128)), block_k=_pick(rng, (16, 32, 64)),
        iters=_pick(rng, (1, 2, 4)), num_warps=_pick(rng, (2, 4, 8)), num_stages=_pick(rng, (0, 2, 3, 4)),
        host_constants=rng.random() < 0.5, autotune=rng.random() < 0.4, block_ptr=rng.random() < 0.3,
        eps=_pick(rng, ("1e-5", "1e-6")), import_math=rng.random() < 0.3,
    )


def sample_params(rng: random.Random, lang: str, family: str) -> KernelParams:
    """A kernel's parameters: the common fields, then the language's (in that order of draws)."""
    common = _sample_common(rng, lang, family)
    return _sample_cuda(rng, family, common) if lang == "cuda" else _sample_triton(rng, family, common)
