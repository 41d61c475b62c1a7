"""The embedded default source ``embedded:kernels``: a deterministic generator of kernel edits.

Pair ``i`` is a function of ``i`` alone (its own ``random.Random`` seeded from
sha256("kernel-gen-1:<i>"); no global RNG), so any subset can be regenerated in any process.
Pair ``i`` uses combination ``COMBOS[i % len(COMBOS)]`` = (language, family, transform), so
every supported combination appears once in every ``len(COMBOS)`` consecutive pairs.

Each pair renders one kernel *family* from a template with sampled parameters (names, variable
names, sizes, dtype, launch knobs, optional features such as an epilogue or unrolling already
present), then applies one *transformation* an engineer makes, which changes exactly one
parameter, and renders again. Rows are CommitPackFT-style dicts plus the true ``transform`` and
``family``.

Families: elementwise, reduction, softmax, layernorm, gemm (CUDA C++ and Triton).
Transforms: tile_size, launch_config, unroll, vectorize, shared_mem, warp_shuffle,
epilogue_fusion, dtype. :data:`SUPPORTED` says which apply to which (language, family); the table
is in docs/kernel.md.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable, Iterator

GENERATOR_VERSION = "kernel-gen-1"
REPO = "wmkit/embedded-kernels"
LANG_NAMES = {"cuda": "CUDA", "triton": "Triton"}

FAMILIES = ("elementwise", "reduction", "softmax", "layernorm", "gemm")
TRANSFORMS = ("tile_size", "launch_config", "unroll", "vectorize", "shared_mem", "warp_shuffle",
              "epilogue_fusion", "dtype")

SUPPORTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("cuda", "elementwise"): ("tile_size", "launch_config", "unroll", "vectorize", "epilogue_fusion", "dtype"),
    ("cuda", "reduction"): ("tile_size", "launch_config", "unroll", "vectorize", "shared_mem", "warp_shuffle",
                            "epilogue_fusion", "dtype"),
    ("cuda", "softmax"): ("tile_size", "launch_config", "unroll", "shared_mem", "warp_shuffle",
                          "epilogue_fusion", "dtype"),
    ("cuda", "layernorm"): ("tile_size", "launch_config", "unroll", "shared_mem", "warp_shuffle",
                            "epilogue_fusion", "dtype"),
    ("cuda", "gemm"): ("tile_size", "launch_config", "unroll", "shared_mem", "epilogue_fusion", "dtype"),
    ("triton", "elementwise"): ("tile_size", "launch_config", "unroll", "vectorize", "epilogue_fusion", "dtype"),
    ("triton", "reduction"): ("tile_size", "launch_config", "unroll", "vectorize", "epilogue_fusion", "dtype"),
    ("triton", "softmax"): ("tile_size", "launch_config", "unroll", "vectorize", "epilogue_fusion", "dtype"),
    ("triton", "layernorm"): ("tile_size", "launch_config", "unroll", "vectorize", "epilogue_fusion", "dtype"),
    ("triton", "gemm"): ("tile_size", "launch_config", "unroll", "vectorize", "shared_mem", "epilogue_fusion",
                         "dtype"),
}

EPILOGUES = {
    "elementwise": ("scale", "bias", "residual", "clamp", "relu"),
    "reduction": ("scale", "weighted"),
    "softmax": ("scale", "log"),
    "layernorm": ("residual", "relu", "gelu"),
    "gemm": ("bias", "relu", "bias_relu", "alpha", "gelu"),
}


def combos(languages=("cuda", "triton")) -> list[tuple[str, str, str]]:
    """Every supported (language, family, transform), in a fixed order."""
    return [(lang, fam, tr) for lang in ("cuda", "triton") if lang in languages
            for fam in FAMILIES for tr in TRANSFORMS if tr in SUPPORTED[(lang, fam)]]


def _rng(index: int) -> random.Random:
    digest = hashlib.sha256(f"{GENERATOR_VERSION}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))]


# =============================================================================================
# shared vocabulary of names and numbers
# =============================================================================================
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


def _common(rng: random.Random, lang: str, family: str) -> dict[str, Any]:
    op = _pick(rng, REDUCE_OPS if family == "reduction" else OPS)
    return {
        "lang": lang, "family": family, "op": op, "name": _kernel_name(rng, family, op),
        "dt": _pick(rng, DTYPES), "epilogue": "none" if rng.random() < 0.5 else _pick(rng, EPILOGUES[family]),
        "unroll": rng.random() < 0.3, "unroll_factor": _pick(rng, (2, 4, 8)), "vec": rng.random() < 0.3,
        "unroll_name": _pick(rng, ("UNROLL", "UNROLL_FACTOR", "UNROLL_N", "N_UNROLL")),
        "epi_fmt": _pick(rng, ("{}_epilogue", "apply_{}", "epilogue_{}")),
        "clamp": _pick(rng, ("6.0", "10.0", "1.0", "20.0")),
    }


# =============================================================================================
# CUDA
# =============================================================================================
CUDA_T = {"f32": "float", "f16": "__half", "bf16": "__nv_bfloat16"}
CUDA_VEC = {"f32": ("float4", 4), "f16": ("__half2", 2), "bf16": ("__nv_bfloat162", 2)}
CUDA_OP = {
    "relu": "fmaxf(v, 0.f)", "gelu": "0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)))",
    "silu": "v / (1.f + __expf(-v))", "sigmoid": "1.f / (1.f + __expf(-v))", "square": "v * v",
    "abs": "fabsf(v)", "exp": "__expf(v)", "tanh": "tanhf(v)", "softplus": "log1pf(__expf(v))",
    "sum": "v", "sumsq": "v * v", "l1": "fabsf(v)",
}


def _to_f(dt: str, e: str) -> str:
    return {"f32": e, "f16": f"__half2float({e})", "bf16": f"__bfloat162float({e})"}[dt]


def _from_f(dt: str, e: str) -> str:
    return {"f32": e, "f16": f"__float2half({e})", "bf16": f"__float2bfloat16({e})"}[dt]


def _cuda_params(rng: random.Random, family: str) -> dict[str, Any]:
    ptrs = _pick(rng, (("x", "y"), ("in", "out"), ("src", "dst"), ("input", "output"), ("a", "b")))
    return {
        "const_style": _pick(rng, ("define", "constexpr", "static")), "restrict": rng.random() < 0.6,
        "stream": rng.random() < 0.6, "check": _pick(rng, ("none", "c10", "cuda")),
        "n": _pick(rng, ("n", "N", "numel", "size", "count", "total")),
        "size_t": _pick(rng, ("int", "int64_t", "size_t")), "ptrs": ptrs,
        "scale": _pick(rng, ("alpha", "scale", "factor")), "bias": _pick(rng, ("bias", "shift", "b_vec")),
        "res": _pick(rng, ("residual", "res", "skip")), "minb": _pick(rng, (0, 0, 1, 2, 4)),
        "block": _pick(rng, (64, 128, 256, 512)) if family != "gemm" else _pick(rng, (8, 16, 32)),
        "items": _pick(rng, (2, 4, 8)), "max_blocks": _pick(rng, (256, 512, 1024, 2048)),
        "reduce": _pick(rng, ("atomic", "shared", "shuffle")) if family == "reduction"
        else _pick(rng, ("shared", "shuffle")),
        "cache_row": rng.random() < 0.3, "smem": rng.random() < 0.5,
        "buf": _pick(rng, ("buf", "smem", "sdata", "shm", "scratch")),
        "wbuf": _pick(rng, ("warp_buf", "warp_sums", "partials", "warp_partial")),
        "eps": _pick(rng, ("1e-5f", "1e-6f", "1e-12f")), "tile_name": _pick(rng, ("TILE", "TILE_SIZE", "BLOCK_DIM", "BLOCK")),
        "header": rng.random() < 0.5,
    }


def _cuda_const(p, name: str, value: int) -> str:
    return {"define": f"#define {name} {value}", "constexpr": f"constexpr int {name} = {value};",
            "static": f"static constexpr int {name} = {value};"}[p["const_style"]]


def _cuda_includes(p) -> list[str]:
    lines = ["#include <cuda_runtime.h>"]
    if p["dt"] == "f16":
        lines.append("#include <cuda_fp16.h>")
    elif p["dt"] == "bf16":
        lines.append("#include <cuda_bf16.h>")
    if p["check"] == "c10":
        lines.append("#include <c10/cuda/CUDAException.h>")
    if p["header"]:
        lines.append("#include <cstdint>")
    return lines + [""]


def _r(p) -> str:
    return " __restrict__" if p["restrict"] else ""


def _lb(p, threads: str) -> str:
    return f"__launch_bounds__({threads}, {p['minb']}) " if p["minb"] else ""


def _launch(p, name: str, grid: str, block: str, args: str, smem: str = "0") -> list[str]:
    if p["stream"]:
        cfg = f"{grid}, {block}, {smem}, stream"
    else:
        cfg = f"{grid}, {block}" + (f", {smem}" if smem != "0" else "")
    lines = [f"    {name}<<<{cfg}>>>({args});"]
    if p["check"] == "c10":
        lines.append("    C10_CUDA_KERNEL_LAUNCH_CHECK();")
    elif p["check"] == "cuda":
        lines.append("    cudaGetLastError();")
    return lines


def _stream_param(p) -> str:
    return ", cudaStream_t stream" if p["stream"] else ""


def _pragma(p) -> list[str]:
    return [f"#pragma unroll {p['unroll_name']}"] if p["unroll"] else []


def _cuda_unroll_const(p) -> list[str]:
    return [_cuda_const(p, p["unroll_name"], p["unroll_factor"])] if p["unroll"] else []


CUDA_ACTIVATIONS = {"relu": "fmaxf(v, 0.f)", "gelu": "0.5f * v * (1.f + erff(v * 0.70710678f))",
                    "clamp": "fminf(fmaxf(v, -{c}f), {c}f)"}


def _cuda_epilogue_helpers(p) -> list[str]:
    """A __device__ helper for an activation epilogue (relu, gelu, clamp, bias_relu)."""
    act = {"bias_relu": "relu"}.get(p["epilogue"], p["epilogue"])
    if act not in CUDA_ACTIVATIONS:
        return []
    return [f"__device__ __forceinline__ float {p['epi_fmt'].format(act)}(float v) {{",
            f"    return {CUDA_ACTIVATIONS[act].format(c=p['clamp'])};", "}", ""]


def _indent(lines: list[str], n: int) -> list[str]:
    pad = " " * n
    return [pad + line if line and not line.startswith("#") else line for line in lines]


def _block_reduce(p, kind: str) -> list[str]:
    """__device__ helpers reducing a float over the block (shared-memory tree or warp shuffles)."""
    comb = "fmaxf({a}, {b})" if kind == "max" else "{a} + {b}"
    init = "-INFINITY" if kind == "max" else "0.f"
    if p["reduce"] == "shuffle":
        return [
            f"__device__ __forceinline__ float warp_reduce_{kind}(float v) {{",
            "    for (int offset = 16; offset > 0; offset >>= 1) {",
            f"        v = {comb.format(a='v', b='__shfl_xor_sync(0xffffffff, v, offset)')};",
            "    }",
            "    return v;",
            "}",
            "",
            f"__device__ float block_reduce_{kind}(float v) {{",
            f"    __shared__ float {p['wbuf']}[32];",
            "    const int lane = threadIdx.x % 32;",
            "    const int warp = threadIdx.x / 32;",
            f"    v = warp_reduce_{kind}(v);",
            f"    if (lane == 0) {p['wbuf']}[warp] = v;",
            "    __syncthreads();",
            f"    v = lane < BLOCK_SIZE / 32 ? {p['wbuf']}[lane] : {init};",
            f"    return warp_reduce_{kind}(v);",
            "}",
            "",
        ]
    buf = p["buf"]
    return [
        f"__device__ float block_reduce_{kind}(float v) {{",
        f"    __shared__ float {buf}[BLOCK_SIZE];",
        f"    {buf}[threadIdx.x] = v;",
        "    __syncthreads();",
        "    for (int s = BLOCK_SIZE / 2; s > 0; s >>= 1) {",
        f"        if (threadIdx.x < s) {buf}[threadIdx.x] = "
        + comb.format(a=f"{buf}[threadIdx.x]", b=f"{buf}[threadIdx.x + s]") + ";",
        "        __syncthreads();",
        "    }",
        f"    const float result = {buf}[0];",
        "    __syncthreads();",
        "    return result;",
        "}",
        "",
    ]


def _cuda_epilogue(p, var: str, idx: str) -> list[str]:
    e, dt = p["epilogue"], p["dt"]
    if e == "scale" or e == "alpha":
        return [f"{var} *= {p['scale']};"]
    if e == "bias":
        return [f"{var} += {_to_f(dt, p['bias'] + '[' + idx + ']')};"]
    if e == "residual":
        return [f"{var} += {_to_f(dt, p['res'] + '[' + idx + ']')};"]
    if e == "bias_relu":
        return [f"{var} = {p['epi_fmt'].format('relu')}({var} + {_to_f(dt, p['bias'] + '[' + idx + ']')});"]
    if e in CUDA_ACTIVATIONS:
        return [f"{var} = {p['epi_fmt'].format(e)}({var});"]
    return []


def _cuda_epilogue_params(p, T: str) -> tuple[str, str]:
    """(kernel parameter declarations, call arguments) added by the epilogue."""
    e, r = p["epilogue"], _r(p)
    if e in ("scale", "alpha"):
        return f", float {p['scale']}", f", {p['scale']}"
    if e in ("bias", "bias_relu"):
        return f", const {T}*{r} {p['bias']}", f", {p['bias']}"
    if e == "residual":
        return f", const {T}*{r} {p['res']}", f", {p['res']}"
    return "", ""


def render_cuda_elementwise(p) -> str:
    T, dt, n, (x, y) = CUDA_T[p["dt"]], p["dt"], p["n"], p["ptrs"]
    r = _r(p)
    eparams, eargs = _cuda_epilogue_params(p, T)
    out = _cuda_includes(p)
    out += [_cuda_const(p, "BLOCK_SIZE", p["block"]), _cuda_const(p, "ITEMS_PER_THREAD", p["items"]),
            *_cuda_unroll_const(p), ""]
    out += _cuda_epilogue_helpers(p)
    out += [f"__device__ __forceinline__ float {p['op']}_op(float v) {{", f"    return {CUDA_OP[p['op']]};", "}", ""]
    out += [f"__global__ void {_lb(p, 'BLOCK_SIZE')}{p['name']}(const {T}*{r} {x}, {T}*{r} {y}{eparams}, "
            f"{p['size_t']} {n}) {{",
            "    const int base = blockIdx.x * (BLOCK_SIZE * ITEMS_PER_THREAD) + threadIdx.x;"]
    if not p["vec"]:
        body = [f"const int i = base + k * BLOCK_SIZE;", f"if (i < {n}) {{",
                f"    float v = {_to_f(dt, x + '[i]')};", f"    v = {p['op']}_op(v);",
                *["    " + s for s in _cuda_epilogue(p, "v", "i")],
                f"    {y}[i] = {_from_f(dt, 'v')};", "}"]
    else:
        VT, W = CUDA_VEC[dt]
        out += [f"    const {VT}* {x}_vec = reinterpret_cast<const {VT}*>({x});",
                f"    {VT}* {y}_vec = reinterpret_cast<{VT}*>({y});"]
        lanes = "xyzw"[:W]
        body = [f"const int i = base + k * BLOCK_SIZE;", f"if (i < {n} / {W}) {{",
                f"    {VT} packed = {x}_vec[i];"]
        if dt == "f32":
            src = "packed"
        else:
            cvt = "__half22float2" if dt == "f16" else "__bfloat1622float2"
            body.append(f"    float2 f = {cvt}(packed);")
            src = "f"
        for li, lane in enumerate(lanes):
            body.append(f"    {{ float v = {src}.{lane}; v = {p['op']}_op(v);")
            body += ["      " + s for s in _cuda_epilogue(p, "v", f"i * {W} + {li}")]
            body.append(f"      {src}.{lane} = v; }}")
        if dt != "f32":
            back = "__float22half2_rn" if dt == "f16" else "__float22bfloat162_rn"
            body.append(f"    packed = {back}(f);")
        body += [f"    {y}_vec[i] = packed;", "}"]
    out += _pragma(p)
    out += ["    for (int k = 0; k < ITEMS_PER_THREAD; ++k) {", *_indent(body, 8), "    }", "}", ""]
    div = f"{n} / {CUDA_VEC[dt][1]}" if p["vec"] else n
    out += [f"void {p['name']}_launch(const {T}* {x}, {T}* {y}{eparams.replace(r, '')}, {p['size_t']} {n}"
            f"{_stream_param(p)}) {{",
            f"    const int blocks = ({div} + BLOCK_SIZE * ITEMS_PER_THREAD - 1) / (BLOCK_SIZE * ITEMS_PER_THREAD);",
            *_launch(p, p["name"], "blocks", "BLOCK_SIZE", f"{x}, {y}{eargs}, {n}"), "}", ""]
    return "\n".join(out)


def render_cuda_reduction(p) -> str:
    T, dt, n, (x, out_name) = CUDA_T[p["dt"]], p["dt"], p["n"], p["ptrs"]
    r = _r(p)
    e = p["epilogue"]
    eparams = f", float {p['scale']}" if e == "scale" else (f", const {T}*{r} w" if e == "weighted" else "")
    eargs = f", {p['scale']}" if e == "scale" else (", w" if e == "weighted" else "")
    out = _cuda_includes(p)
    out += [_cuda_const(p, "BLOCK_SIZE", p["block"]), _cuda_const(p, "MAX_BLOCKS", p["max_blocks"]),
            *_cuda_unroll_const(p), ""]
    if p["reduce"] != "atomic":
        out += _block_reduce(p, "sum")
    out += [f"__global__ void {_lb(p, 'BLOCK_SIZE')}{p['name']}(const {T}*{r} {x}, float*{r} {out_name}"
            f"{eparams}, {p['size_t']} {n}) {{",
            "    float acc = 0.f;"]
    op = CUDA_OP[p["op"]]
    if not p["vec"]:
        out += ["    const int stride = BLOCK_SIZE * gridDim.x;", *_pragma(p),
                f"    for (int i = blockIdx.x * BLOCK_SIZE + threadIdx.x; i < {n}; i += stride) {{",
                f"        float v = {_to_f(dt, x + '[i]')};"]
        if e == "weighted":
            out.append(f"        v *= {_to_f(dt, 'w[i]')};")
        out += [f"        acc += {op};", "    }"]
    else:
        VT, W = CUDA_VEC[dt]
        out += [f"    const {VT}* {x}_vec = reinterpret_cast<const {VT}*>({x});",
                "    const int stride = BLOCK_SIZE * gridDim.x;", *_pragma(p),
                f"    for (int i = blockIdx.x * BLOCK_SIZE + threadIdx.x; i < {n} / {W}; i += stride) {{",
                f"        const {VT} packed = {x}_vec[i];"]
        if dt == "f32":
            src = "packed"
        else:
            cvt = "__half22float2" if dt == "f16" else "__bfloat1622float2"
            out.append(f"        const float2 f = {cvt}(packed);")
            src = "f"
        for li, lane in enumerate("xyzw"[:W]):
            weight = f" * {_to_f(dt, f'w[i * {W} + {li}]')}" if e == "weighted" else ""
            out.append(f"        {{ const float v = {src}.{lane}{weight}; acc += {op}; }}")
        out.append("    }")
    scaled = f"acc * {p['scale']}" if e == "scale" else "acc"
    if p["reduce"] == "atomic":
        out += [f"    atomicAdd({out_name}, {scaled});", "}", ""]
    else:
        out += ["    acc = block_reduce_sum(acc);", f"    if (threadIdx.x == 0) atomicAdd({out_name}, {scaled});",
                "}", ""]
    out += [f"void {p['name']}_launch(const {T}* {x}, float* {out_name}{eparams.replace(r, '')}, "
            f"{p['size_t']} {n}{_stream_param(p)}) {{",
            f"    int blocks = ({n} + BLOCK_SIZE - 1) / BLOCK_SIZE;",
            "    if (blocks > MAX_BLOCKS) blocks = MAX_BLOCKS;",
            f"    cudaMemsetAsync({out_name}, 0, sizeof(float){', stream' if p['stream'] else ''});",
            *_launch(p, p["name"], "blocks", "BLOCK_SIZE", f"{x}, {out_name}{eargs}, {n}"), "}", ""]
    return "\n".join(out)


def render_cuda_softmax(p) -> str:
    T, dt, (x, y) = CUDA_T[p["dt"]], p["dt"], p["ptrs"]
    r = _r(p)
    e, cache = p["epilogue"], p["cache_row"]
    eparams = f", float {p['scale']}" if e == "scale" else ""
    eargs = f", {p['scale']}" if e == "scale" else ""
    load = _to_f(dt, "row_in[c]") + (f" * {p['scale']}" if e == "scale" else "")
    again = "row_cache[c]" if cache else load
    out = _cuda_includes(p) + [_cuda_const(p, "BLOCK_SIZE", p["block"]), *_cuda_unroll_const(p), ""]
    out += _block_reduce(p, "max") + _block_reduce(p, "sum")
    out += [f"__global__ void {_lb(p, 'BLOCK_SIZE')}{p['name']}(const {T}*{r} {x}, {T}*{r} {y}, int cols{eparams}) {{",
            "    const int row = blockIdx.x;",
            f"    const {T}* row_in = {x} + (size_t)row * cols;",
            f"    {T}* row_out = {y} + (size_t)row * cols;"]
    if cache:
        out.append("    extern __shared__ float row_cache[];")
    out += ["    float local_max = -INFINITY;", *_pragma(p),
            "    for (int c = threadIdx.x; c < cols; c += BLOCK_SIZE) {",
            f"        const float v = {load};"]
    if cache:
        out.append("        row_cache[c] = v;")
    out += ["        local_max = fmaxf(local_max, v);", "    }",
            "    const float row_max = block_reduce_max(local_max);",
            "    float local_sum = 0.f;",
            "    for (int c = threadIdx.x; c < cols; c += BLOCK_SIZE) {",
            f"        local_sum += __expf({again} - row_max);", "    }",
            "    const float row_sum = block_reduce_sum(local_sum);",
            "    for (int c = threadIdx.x; c < cols; c += BLOCK_SIZE) {"]
    if e == "log":
        out.append(f"        row_out[c] = {_from_f(dt, again + ' - row_max - __logf(row_sum)')};")
    else:
        out.append(f"        row_out[c] = {_from_f(dt, '__expf(' + again + ' - row_max) / row_sum')};")
    out += ["    }", "}", ""]
    smem = "cols * sizeof(float)" if cache else "0"
    out += [f"void {p['name']}_launch(const {T}* {x}, {T}* {y}, int rows, int cols{eparams}{_stream_param(p)}) {{",
            *_launch(p, p["name"], "rows", "BLOCK_SIZE", f"{x}, {y}, cols{eargs}", smem), "}", ""]
    return "\n".join(out)


def render_cuda_layernorm(p) -> str:
    T, dt, (x, y) = CUDA_T[p["dt"]], p["dt"], p["ptrs"]
    r = _r(p)
    e, cache = p["epilogue"], p["cache_row"]
    eparams = f", const {T}*{r} {p['res']}" if e == "residual" else ""
    eargs = f", {p['res']}" if e == "residual" else ""
    load = _to_f(dt, "xr[c]") + (" + " + _to_f(dt, f"{p['res']}[(size_t)row * cols + c]") if e == "residual" else "")
    again = "row_cache[c]" if cache else load
    out = _cuda_includes(p) + [_cuda_const(p, "BLOCK_SIZE", p["block"]), *_cuda_unroll_const(p), ""]
    out += _block_reduce(p, "sum") + _cuda_epilogue_helpers(p)
    out += [f"__global__ void {_lb(p, 'BLOCK_SIZE')}{p['name']}(const {T}*{r} {x}, const {T}*{r} gamma, "
            f"const {T}*{r} beta, {T}*{r} {y}, int cols, float eps{eparams}) {{",
            "    const int row = blockIdx.x;",
            f"    const {T}* xr = {x} + (size_t)row * cols;",
            f"    {T}* yr = {y} + (size_t)row * cols;"]
    if cache:
        out.append("    extern __shared__ float row_cache[];")
    out += ["    float local_sum = 0.f;", *_pragma(p),
            "    for (int c = threadIdx.x; c < cols; c += BLOCK_SIZE) {",
            f"        const float v = {load};"]
    if cache:
        out.append("        row_cache[c] = v;")
    out += ["        local_sum += v;", "    }",
            "    const float mean = block_reduce_sum(local_sum) / cols;",
            "    float local_var = 0.f;",
            "    for (int c = threadIdx.x; c < cols; c += BLOCK_SIZE) {",
            f"        const float d = {again} - mean;", "        local_var += d * d;", "    }",
            "    const float rstd = rsqrtf(block_reduce_sum(local_var) / cols + eps);",
            "    for (int c = threadIdx.x; c < cols; c += BLOCK_SIZE) {",
            f"        float o = ({again} - mean) * rstd * {_to_f(dt, 'gamma[c]')} + {_to_f(dt, 'beta[c]')};"]
    if e in ("relu", "gelu"):
        out += ["        " + s for s in _cuda_epilogue(p, "o", "c")]
    out += [f"        yr[c] = {_from_f(dt, 'o')};", "    }", "}", ""]
    smem = "cols * sizeof(float)" if cache else "0"
    out += [f"void {p['name']}_launch(const {T}* {x}, const {T}* gamma, const {T}* beta, {T}* {y}, int rows, "
            f"int cols{eparams.replace(r, '')}{_stream_param(p)}) {{",
            *_launch(p, p["name"], "rows", "BLOCK_SIZE", f"{x}, gamma, beta, {y}, cols, {p['eps']}{eargs}", smem),
            "}", ""]
    return "\n".join(out)


def render_cuda_gemm(p) -> str:
    T, dt = CUDA_T[p["dt"]], p["dt"]
    r = _r(p)
    TL = p["tile_name"]
    eparams, eargs = _cuda_epilogue_params(p, T)
    zero = _from_f(dt, "0.f")
    out = _cuda_includes(p) + [_cuda_const(p, TL, p["block"]), *_cuda_unroll_const(p), ""]
    out += _cuda_epilogue_helpers(p)
    out += [f"__global__ void {_lb(p, f'{TL} * {TL}')}{p['name']}(const {T}*{r} A, const {T}*{r} B, {T}*{r} C, "
            f"int M, int N, int K{eparams}) {{",
            f"    const int row = blockIdx.y * {TL} + threadIdx.y;",
            f"    const int col = blockIdx.x * {TL} + threadIdx.x;",
            "    float acc = 0.f;"]
    if p["smem"]:
        out += [f"    __shared__ {T} As[{TL}][{TL}];", f"    __shared__ {T} Bs[{TL}][{TL}];",
                f"    for (int t = 0; t < (K + {TL} - 1) / {TL}; ++t) {{",
                f"        const int a_col = t * {TL} + threadIdx.x;",
                f"        const int b_row = t * {TL} + threadIdx.y;",
                f"        As[threadIdx.y][threadIdx.x] = (row < M && a_col < K) ? A[row * K + a_col] : {zero};",
                f"        Bs[threadIdx.y][threadIdx.x] = (b_row < K && col < N) ? B[b_row * N + col] : {zero};",
                "        __syncthreads();", *_pragma(p),
                f"        for (int k = 0; k < {TL}; ++k) {{",
                f"            acc += {_to_f(dt, 'As[threadIdx.y][k]')} * {_to_f(dt, 'Bs[k][threadIdx.x]')};",
                "        }", "        __syncthreads();", "    }",
                "    if (row >= M || col >= N) return;"]
    else:
        out += ["    if (row >= M || col >= N) return;", *_pragma(p),
                "    for (int k = 0; k < K; ++k) {",
                f"        acc += {_to_f(dt, 'A[row * K + k]')} * {_to_f(dt, 'B[k * N + col]')};", "    }"]
    out += ["    " + s for s in _cuda_epilogue(p, "acc", "col")]
    out += [f"    C[row * N + col] = {_from_f(dt, 'acc')};", "}", ""]
    out += [f"void {p['name']}_launch(const {T}* A, const {T}* B, {T}* C, int M, int N, int K"
            f"{eparams.replace(r, '')}{_stream_param(p)}) {{",
            f"    dim3 block({TL}, {TL});",
            f"    dim3 grid((N + {TL} - 1) / {TL}, (M + {TL} - 1) / {TL});",
            *_launch(p, p["name"], "grid", "block", f"A, B, C, M, N, K{eargs}"), "}", ""]
    return "\n".join(out)


# =============================================================================================
# Triton
# =============================================================================================
TL_T = {"f32": "tl.float32", "f16": "tl.float16", "bf16": "tl.bfloat16"}
TORCH_T = {"f32": "torch.float32", "f16": "torch.float16", "bf16": "torch.bfloat16"}
TL_OP = {
    "relu": "tl.maximum({v}, 0.0)", "gelu": "0.5 * {v} * (1.0 + tl.erf({v} * 0.7071067811865476))",
    "silu": "{v} * tl.sigmoid({v})", "sigmoid": "tl.sigmoid({v})", "square": "{v} * {v}", "abs": "tl.abs({v})",
    "exp": "tl.exp({v})", "tanh": "2.0 * tl.sigmoid(2.0 * {v}) - 1.0", "softplus": "tl.log(1.0 + tl.exp({v}))",
    "sum": "{v}", "sumsq": "{v} * {v}", "l1": "tl.abs({v})",
}


def _triton_params(rng: random.Random, family: str) -> dict[str, Any]:
    return {
        "ptrs": _pick(rng, (("x_ptr", "out_ptr"), ("X", "Y"), ("in_ptr", "out_ptr"), ("input_ptr", "output_ptr"),
                            ("src_ptr", "dst_ptr"))),
        "n": _pick(rng, ("n_elements", "N", "numel", "n")), "pid": _pick(rng, ("pid", "program_id", "block_id")),
        "offs": _pick(rng, ("offsets", "offs", "idx")), "scale": _pick(rng, ("alpha", "scale", "factor")),
        "block": _pick(rng, (256, 512, 1024, 2048)) if family != "gemm" else 0,
        "bm": _pick(rng, (32, 64, 128)), "bn": _pick(rng, (32, 64, 128)), "bk": _pick(rng, (16, 32, 64)),
        "iters": _pick(rng, (1, 2, 4)), "num_warps": _pick(rng, (2, 4, 8)), "num_stages": _pick(rng, (0, 2, 3, 4)),
        "host_const": rng.random() < 0.5, "autotune": rng.random() < 0.4, "block_ptr": rng.random() < 0.3,
        "eps": _pick(rng, ("1e-5", "1e-6")), "import_math": rng.random() < 0.3,
    }


def _tl_epilogue(p, var: str, offs: str, mask: str) -> list[str]:
    e = p["epilogue"]
    if e in ("scale", "alpha"):
        return [f"{var} = {var} * {p['scale']}"]
    if e in ("bias", "bias_relu"):
        lines = [f"{var} += tl.load(bias_ptr + {offs}, mask={mask}, other=0.0).to(tl.float32)"]
        if e == "bias_relu":
            lines += ['if ACTIVATION == "relu":', f"    {var} = tl.maximum({var}, 0.0)"]
        return lines
    if e == "residual":
        return [f"{var} += tl.load(res_ptr + {offs}, mask={mask}, other=0.0).to(tl.float32)"]
    if e in TL_ACTIVATIONS:
        return [f'if ACTIVATION == "{e}":', f"    {var} = {TL_ACTIVATIONS[e].format(v=var, c=p['clamp'])}"]
    return []


TL_ACTIVATIONS = {"relu": "tl.maximum({v}, 0.0)", "gelu": "0.5 * {v} * (1.0 + tl.erf({v} * 0.7071067811865476))",
                  "clamp": "tl.minimum(tl.maximum({v}, -{c}), {c})"}


def _tl_activation(p) -> tuple[str, list[str]]:
    """(signature suffix, launch kwargs) of an activation epilogue chosen by a constexpr flag."""
    act = {"bias_relu": "relu"}.get(p["epilogue"], p["epilogue"])
    if act not in TL_ACTIVATIONS:
        return "", []
    return ", ACTIVATION: tl.constexpr", [f'ACTIVATION="{act}"']


def _tl_epilogue_params(p) -> tuple[str, str, str]:
    """(kernel params, launcher params, call args) added by the epilogue."""
    e = p["epilogue"]
    if e in ("scale", "alpha"):
        return f"{p['scale']}, ", f", {p['scale']}: float = 1.0", f"{p['scale']}, "
    if e in ("bias", "bias_relu"):
        return "bias_ptr, ", ", bias: torch.Tensor", "bias, "
    if e == "residual":
        return "res_ptr, ", ", residual: torch.Tensor", "residual, "
    return "", "", ""


def _tl_header(p) -> list[str]:
    lines = ["import math"] if p["import_math"] else []
    return lines + ["import torch", "import triton", "import triton.language as tl", "", ""]


def _tl_launch_kwargs(p, consts: list[str]) -> str:
    kw = consts + [f"num_warps={p['num_warps']}"]
    if p["num_stages"]:
        kw.append(f"num_stages={p['num_stages']}")
    return ", ".join(kw)


def _tl_loop(p, var: str, args: str, constexpr_bound: bool) -> str:
    if not p["unroll"]:
        return f"for {var} in range({args}):"
    if constexpr_bound:
        return f"for {var} in tl.static_range({args}):"
    return f"for {var} in tl.range({args}, loop_unroll_factor={p['unroll_factor'] or 2}):"


def _tl_hint(p, offs: str, block: str) -> list[str]:
    return [f"{offs} = tl.max_contiguous(tl.multiple_of({offs}, {block}), {block})"] if p["vec"] else []


def _tl_block_binding(p, name: str, value: int, consts: list[str], host: list[str]) -> None:
    if p["host_const"]:
        host.append(f"    {name} = {value}")
        consts.append(f"{name}={name}")
    else:
        consts.append(f"{name}={value}")


def render_triton_elementwise(p) -> str:
    (x, y), n, pid, offs = p["ptrs"], p["n"], p["pid"], p["offs"]
    kparams, hparams, cargs = _tl_epilogue_params(p)
    act_sig, act_kw = _tl_activation(p)
    iters = p["iters"]
    out = _tl_header(p) + ["@triton.jit",
                           f"def {p['name']}_kernel({x}, {y}, {kparams}{n}, BLOCK_SIZE: tl.constexpr"
                           + (", ITERS: tl.constexpr" if iters > 1 else "") + act_sig + "):",
                           f"    {pid} = tl.program_id(axis=0)"]
    body = []
    if iters > 1:
        body.append(f"{offs} = ({pid} * ITERS + it) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)")
    else:
        body.append(f"{offs} = {pid} * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)")
    body += _tl_hint(p, offs, "BLOCK_SIZE")
    body += [f"mask = {offs} < {n}",
             f"x = tl.load({x} + {offs}, mask=mask).to(tl.float32)",
             f"y = {TL_OP[p['op']].format(v='x')}",
             *_tl_epilogue(p, "y", offs, "mask"),
             f"tl.store({y} + {offs}, y.to({TL_T[p['dt']]}), mask=mask)"]
    if iters > 1:
        out.append("    " + _tl_loop(p, "it", "ITERS", True))
        out += ["        " + s for s in body]
    else:
        out += ["    " + s for s in body]
    out += ["", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p["block"], consts, host)
    if iters > 1:
        consts.append(f"ITERS={iters}")
    consts += act_kw
    block_expr = "BLOCK_SIZE" if p["host_const"] else str(p["block"])
    out += [f"def {p['name']}(x: torch.Tensor{hparams}) -> torch.Tensor:",
            f"    out = torch.empty_like(x, dtype={TORCH_T[p['dt']]})",
            f"    {n} = x.numel()", *host,
            f"    grid = (triton.cdiv({n}, {block_expr}{' * ' + str(iters) if iters > 1 else ''}),)",
            f"    {p['name']}_kernel[grid](x, out, {cargs}{n}, {_tl_launch_kwargs(p, consts)})",
            "    return out", ""]
    return "\n".join(out)


def render_triton_reduction(p) -> str:
    (x, y), pid = p["ptrs"], p["pid"]
    e = p["epilogue"]
    kparams = f"{p['scale']}, " if e == "scale" else ("w_ptr, " if e == "weighted" else "")
    hparams = f", {p['scale']}: float = 1.0" if e == "scale" else (", weight: torch.Tensor" if e == "weighted" else "")
    cargs = f"{p['scale']}, " if e == "scale" else ("weight, " if e == "weighted" else "")
    out = _tl_header(p) + ["@triton.jit",
                           f"def {p['name']}_kernel({x}, {y}, {kparams}n_cols, stride_row, "
                           "BLOCK_SIZE: tl.constexpr, NUM_CHUNKS: tl.constexpr):",
                           f"    {pid} = tl.program_id(0)",
                           f"    row_start = {x} + {pid} * stride_row",
                           "    acc = tl.zeros([BLOCK_SIZE], dtype=tl.float32)",
                           "    " + _tl_loop(p, "chunk", "NUM_CHUNKS", True),
                           "        cols = chunk * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)",
                           *["        " + s for s in _tl_hint(p, "cols", "BLOCK_SIZE")],
                           "        mask = cols < n_cols",
                           "        v = tl.load(row_start + cols, mask=mask, other=0.0).to(tl.float32)"]
    if e == "weighted":
        out.append("        v = v * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)")
    out += [f"        acc += {TL_OP[p['op']].format(v='v')}",
            "    total = tl.sum(acc, axis=0)"]
    if e == "scale":
        out.append(f"    total = total * {p['scale']}")
    out += [f"    tl.store({y} + {pid}, total.to({TL_T[p['dt']]}))", "", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p["block"], consts, host)
    block_expr = "BLOCK_SIZE" if p["host_const"] else str(p["block"])
    consts.append("NUM_CHUNKS=num_chunks")
    out += [f"def {p['name']}(x: torch.Tensor{hparams}) -> torch.Tensor:",
            "    n_rows, n_cols = x.shape",
            f"    out = torch.empty((n_rows,), device=x.device, dtype={TORCH_T[p['dt']]})", *host,
            f"    num_chunks = triton.cdiv(n_cols, {block_expr})",
            f"    {p['name']}_kernel[(n_rows,)](x, out, {cargs}n_cols, x.stride(0), {_tl_launch_kwargs(p, consts)})",
            "    return out", ""]
    return "\n".join(out)


def render_triton_softmax(p) -> str:
    (x, y), pid = p["ptrs"], p["pid"]
    e = p["epilogue"]
    kparams = f"{p['scale']}, " if e == "scale" else ""
    hparams = f", {p['scale']}: float = 1.0" if e == "scale" else ""
    cargs = f"{p['scale']}, " if e == "scale" else ""
    scale = f" * {p['scale']}" if e == "scale" else ""
    load = 'tl.load(row_in + cols, mask=mask, other=-float("inf")).to(tl.float32)' + scale
    out = _tl_header(p) + ["@triton.jit",
                           f"def {p['name']}_kernel({y}, {x}, in_stride, out_stride, n_cols, {kparams}"
                           "BLOCK_SIZE: tl.constexpr):",
                           f"    {pid} = tl.program_id(0)",
                           f"    row_in = {x} + {pid} * in_stride",
                           f"    row_out = {y} + {pid} * out_stride",
                           '    m = tl.full([BLOCK_SIZE], -float("inf"), tl.float32)',
                           "    d = tl.zeros([BLOCK_SIZE], dtype=tl.float32)",
                           "    " + _tl_loop(p, "start", "0, n_cols, BLOCK_SIZE", False),
                           "        cols = start + tl.arange(0, BLOCK_SIZE)",
                           *["        " + s for s in _tl_hint(p, "cols", "BLOCK_SIZE")],
                           "        mask = cols < n_cols",
                           f"        v = {load}",
                           "        m_new = tl.maximum(m, v)",
                           "        d = d * tl.exp(m - m_new) + tl.exp(v - m_new)",
                           "        m = m_new",
                           "    row_max = tl.max(m, axis=0)",
                           "    denom = tl.sum(d * tl.exp(m - row_max), axis=0)",
                           "    for start in range(0, n_cols, BLOCK_SIZE):",
                           "        cols = start + tl.arange(0, BLOCK_SIZE)",
                           "        mask = cols < n_cols",
                           f"        v = {load}"]
    if e == "log":
        out.append("        result = v - row_max - tl.log(denom)")
    else:
        out.append("        result = tl.exp(v - row_max) / denom")
    out += [f"        tl.store(row_out + cols, result.to({TL_T[p['dt']]}), mask=mask)", "", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p["block"], consts, host)
    out += [f"def {p['name']}(x: torch.Tensor{hparams}) -> torch.Tensor:",
            "    n_rows, n_cols = x.shape",
            f"    out = torch.empty(x.shape, device=x.device, dtype={TORCH_T[p['dt']]})", *host,
            f"    {p['name']}_kernel[(n_rows,)](out, x, x.stride(0), out.stride(0), n_cols, {cargs}"
            f"{_tl_launch_kwargs(p, consts)})",
            "    return out", ""]
    return "\n".join(out)


def render_triton_layernorm(p) -> str:
    (x, y), pid = p["ptrs"], p["pid"]
    e = p["epilogue"]
    kparams = "res_ptr, " if e == "residual" else ""
    hparams = ", residual: torch.Tensor" if e == "residual" else ""
    cargs = "residual, " if e == "residual" else ""
    load = "tl.load(row_x + cols, mask=mask, other=0.0).to(tl.float32)"
    if e == "residual":
        load += f" + tl.load(res_ptr + {pid} * stride + cols, mask=mask, other=0.0).to(tl.float32)"

    def loop(first: bool) -> list[str]:
        head = _tl_loop(p, "off", "0, N, BLOCK_SIZE", False) if first else "for off in range(0, N, BLOCK_SIZE):"
        return ["    " + head, "        cols = off + tl.arange(0, BLOCK_SIZE)",
                *(["        " + s for s in _tl_hint(p, "cols", "BLOCK_SIZE")] if first else []),
                "        mask = cols < N", f"        a = {load}"]

    act_sig, act_kw = _tl_activation(p)
    out = _tl_header(p) + ["@triton.jit",
                           f"def {p['name']}_kernel({x}, {y}, W, B, {kparams}stride, N, eps, "
                           f"BLOCK_SIZE: tl.constexpr{act_sig}):",
                           f"    {pid} = tl.program_id(0)",
                           f"    row_x = {x} + {pid} * stride",
                           f"    row_y = {y} + {pid} * stride",
                           "    _mean = tl.zeros([BLOCK_SIZE], dtype=tl.float32)",
                           *loop(True), "        _mean += a",
                           "    mean = tl.sum(_mean, axis=0) / N",
                           "    _var = tl.zeros([BLOCK_SIZE], dtype=tl.float32)",
                           *loop(False), "        a = tl.where(mask, a - mean, 0.0)", "        _var += a * a",
                           "    var = tl.sum(_var, axis=0) / N",
                           "    rstd = 1 / tl.sqrt(var + eps)",
                           *loop(False),
                           "        w = tl.load(W + cols, mask=mask)",
                           "        b = tl.load(B + cols, mask=mask)",
                           "        out = (a - mean) * rstd * w + b"]
    if e in ("relu", "gelu"):
        out += ["        " + s for s in _tl_epilogue(p, "out", "cols", "mask")]
    out += [f"        tl.store(row_y + cols, out.to({TL_T[p['dt']]}), mask=mask)", "", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p["block"], consts, host)
    consts += act_kw
    out += [f"def {p['name']}(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor{hparams}, "
            f"eps: float = {p['eps']}) -> torch.Tensor:",
            "    n_rows, N = x.shape",
            f"    y = torch.empty(x.shape, device=x.device, dtype={TORCH_T[p['dt']]})", *host,
            f"    {p['name']}_kernel[(n_rows,)](x, y, weight, bias, {cargs}x.stride(0), N, eps, "
            f"{_tl_launch_kwargs(p, consts)})",
            "    return y", ""]
    return "\n".join(out)


def render_triton_gemm(p) -> str:
    kparams, hparams, cargs = _tl_epilogue_params(p)
    act_sig, act_kw = _tl_activation(p)
    out = _tl_header(p)
    if p["autotune"]:
        stages = f", num_stages={p['num_stages']}" if p["num_stages"] else ""
        out += ["@triton.autotune(",
                f"    configs=[triton.Config({{'BLOCK_M': {p['bm']}, 'BLOCK_N': {p['bn']}, 'BLOCK_K': {p['bk']}}}, "
                f"num_warps={p['num_warps']}{stages})],",
                "    key=['M', 'N', 'K'],", ")"]
    out += ["@triton.jit",
            f"def {p['name']}_kernel(a_ptr, b_ptr, c_ptr, {kparams}M, N, K, stride_am, stride_ak, stride_bk, stride_bn,",
            "        stride_cm, stride_cn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr"
            + act_sig + "):",
            "    pid_m = tl.program_id(0)", "    pid_n = tl.program_id(1)",
            "    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
            "    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
            *["    " + s for s in _tl_hint(p, "offs_m", "BLOCK_M") + _tl_hint(p, "offs_n", "BLOCK_N")],
            "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)"]
    loop = "    " + _tl_loop(p, "k", "0, tl.cdiv(K, BLOCK_K)", False)
    if p["block_ptr"]:
        out += ["    a_block = tl.make_block_ptr(base=a_ptr, shape=(M, K), strides=(stride_am, stride_ak),",
                "                                offsets=(pid_m * BLOCK_M, 0), block_shape=(BLOCK_M, BLOCK_K), order=(1, 0))",
                "    b_block = tl.make_block_ptr(base=b_ptr, shape=(K, N), strides=(stride_bk, stride_bn),",
                "                                offsets=(0, pid_n * BLOCK_N), block_shape=(BLOCK_K, BLOCK_N), order=(1, 0))",
                loop,
                "        a = tl.load(a_block, boundary_check=(0, 1))",
                "        b = tl.load(b_block, boundary_check=(0, 1))",
                "        acc += tl.dot(a, b)",
                "        a_block = tl.advance(a_block, (0, BLOCK_K))",
                "        b_block = tl.advance(b_block, (BLOCK_K, 0))"]
    else:
        out += ["    offs_k = tl.arange(0, BLOCK_K)",
                "    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak",
                "    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn",
                loop,
                "        a = tl.load(a_ptrs, mask=offs_k[None, :] < K - k * BLOCK_K, other=0.0)",
                "        b = tl.load(b_ptrs, mask=offs_k[:, None] < K - k * BLOCK_K, other=0.0)",
                "        acc += tl.dot(a, b)",
                "        a_ptrs += BLOCK_K * stride_ak",
                "        b_ptrs += BLOCK_K * stride_bk"]
    out += ["    c_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)"]
    out += ["    " + s for s in _tl_epilogue(p, "acc", "offs_n[None, :]", "offs_n[None, :] < N")]
    out += [f"    c = acc.to({TL_T[p['dt']]})",
            "    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn",
            "    tl.store(c_ptrs, c, mask=c_mask)", "", ""]
    out += [f"def {p['name']}(a: torch.Tensor, b: torch.Tensor{hparams}) -> torch.Tensor:",
            "    M, K = a.shape", "    _, N = b.shape",
            f"    c = torch.empty((M, N), device=a.device, dtype={TORCH_T[p['dt']]})"]
    call_args = f"a, b, c, {cargs}M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1)"
    if p["autotune"]:
        out += ["    grid = lambda meta: (triton.cdiv(M, meta['BLOCK_M']), triton.cdiv(N, meta['BLOCK_N']))",
                f"    {p['name']}_kernel[grid]({', '.join([call_args, *act_kw])})"]
    else:
        consts: list[str] = []
        host: list[str] = []
        for key, name in (("bm", "BLOCK_M"), ("bn", "BLOCK_N"), ("bk", "BLOCK_K")):
            _tl_block_binding(p, name, p[key], consts, host)
        consts += act_kw
        bm = "BLOCK_M" if p["host_const"] else str(p["bm"])
        bn = "BLOCK_N" if p["host_const"] else str(p["bn"])
        out += [*host, f"    grid = (triton.cdiv(M, {bm}), triton.cdiv(N, {bn}))",
                f"    {p['name']}_kernel[grid]({call_args}, {_tl_launch_kwargs(p, consts)})"]
    out += ["    return c", ""]
    return "\n".join(out)


RENDERERS: dict[tuple[str, str], Callable[[dict], str]] = {
    ("cuda", "elementwise"): render_cuda_elementwise, ("cuda", "reduction"): render_cuda_reduction,
    ("cuda", "softmax"): render_cuda_softmax, ("cuda", "layernorm"): render_cuda_layernorm,
    ("cuda", "gemm"): render_cuda_gemm,
    ("triton", "elementwise"): render_triton_elementwise, ("triton", "reduction"): render_triton_reduction,
    ("triton", "softmax"): render_triton_softmax, ("triton", "layernorm"): render_triton_layernorm,
    ("triton", "gemm"): render_triton_gemm,
}


# =============================================================================================
# transformations: (precondition on the base parameters, the edit)
# =============================================================================================
def _other(rng: random.Random, choices, current):
    return _pick(rng, [c for c in choices if c != current])


def _scale_pow2(rng: random.Random, value: int, low: int, high: int) -> int:
    options = [v for v in (value * 2, value // 2) if low <= v <= high]
    return _pick(rng, options)


def _prepare_and_apply(rng: random.Random, transform: str, base: dict) -> dict:
    """Force ``base`` into a state the transform applies to, and return the edited copy."""
    lang, family = base["lang"], base["family"]
    new = dict(base)
    if transform == "tile_size":
        if lang == "triton" and family == "gemm":
            key = _pick(rng, ("bm", "bn", "bk"))
            new[key] = _scale_pow2(rng, base[key], 16, 256)
        elif lang == "cuda" and family == "gemm":
            new["block"] = _scale_pow2(rng, base["block"], 8, 32)
        else:
            low, high = (64, 1024) if lang == "cuda" else (128, 4096)
            new["block"] = _scale_pow2(rng, base["block"], low, high)
    elif transform == "launch_config":
        if lang == "cuda":
            new["minb"] = _other(rng, (1, 2, 4, 8), base["minb"])
        elif rng.random() < 0.5 or base["num_stages"] == 0:
            new["num_warps"] = _other(rng, (1, 2, 4, 8, 16), base["num_warps"])
        else:
            new["num_stages"] = _other(rng, (1, 2, 3, 4, 5), base["num_stages"])
    elif transform == "unroll":
        base["unroll"] = False
        if lang == "triton" and family == "elementwise" and base["iters"] == 1:
            base["iters"] = _pick(rng, (2, 4))
        new = dict(base)
        new["unroll"] = True
    elif transform == "vectorize":
        base["vec"] = False
        new = dict(base)
        new["vec"] = True
    elif transform == "shared_mem":
        if lang == "triton":
            base["block_ptr"] = False
            new = dict(base, block_ptr=True)
        elif family == "reduction":
            base["reduce"] = "atomic"
            new = dict(base, reduce="shared")
        elif family == "gemm":
            base["smem"] = False
            new = dict(base, smem=True)
        else:
            base["cache_row"] = False
            new = dict(base, cache_row=True)
    elif transform == "warp_shuffle":
        base["reduce"] = "shared"
        new = dict(base, reduce="shuffle")
    elif transform == "epilogue_fusion":
        base["epilogue"] = "none"
        new = dict(base, epilogue=_pick(rng, EPILOGUES[family]))
    elif transform == "dtype":
        new["dt"] = _other(rng, DTYPES, base["dt"])
    else:  # pragma: no cover - guarded by SUPPORTED
        raise ValueError(transform)
    return new


def _base_params(rng: random.Random, lang: str, family: str) -> dict:
    p = _common(rng, lang, family)
    p.update(_cuda_params(rng, family) if lang == "cuda" else _triton_params(rng, family))
    return p


def make_pair(index: int, languages=("cuda", "triton")) -> dict:
    """The ``index``-th generated row (deterministic in ``index`` and ``languages``)."""
    table = combos(languages)
    lang, family, transform = table[index % len(table)]
    rng = _rng(index)
    for _attempt in range(8):
        base = _base_params(rng, lang, family)
        new = _prepare_and_apply(rng, transform, base)
        render = RENDERERS[(lang, family)]
        old_text, new_text = render(base), render(new)
        if old_text != new_text:
            break
    else:  # pragma: no cover - every transform changes the text
        raise RuntimeError(f"generator: pair {index} did not change ({lang}, {family}, {transform})")
    ext = ".cu" if lang == "cuda" else ".py"
    path = f"kernels/{family}/{base['name']}{ext}"
    return {
        "commit": f"embedded-{index}", "old_file": path, "new_file": path,
        "old_contents": old_text, "new_contents": new_text,
        "subject": f"{family}: {transform.replace('_', ' ')}", "message": f"{family}: {transform.replace('_', ' ')}",
        "lang": LANG_NAMES[lang], "license": "MIT", "repos": REPO,
        "transform": transform, "family": family,
    }


def generate(n_pairs: int, languages=("cuda", "triton")) -> Iterator[dict]:
    """Rows ``make_pair(0..n_pairs-1)``."""
    for index in range(n_pairs):
        yield make_pair(index, languages)
