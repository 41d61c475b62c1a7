"""CUDA C++ templates of the five kernel families, rendered from a :class:`~wmkit_kernel.params.CudaParams`."""

from __future__ import annotations

from .params import CudaParams

CUDA_T = {"f32": "float", "f16": "__half", "bf16": "__nv_bfloat16"}
CUDA_VEC = {"f32": ("float4", 4), "f16": ("__half2", 2), "bf16": ("__nv_bfloat162", 2)}
CUDA_OP = {
    "relu": "fmaxf(v, 0.f)", "gelu": "0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)))",
    "silu": "v / (1.f + __expf(-v))", "sigmoid": "1.f / (1.f + __expf(-v))", "square": "v * v",
    "abs": "fabsf(v)", "exp": "__expf(v)", "tanh": "tanhf(v)", "softplus": "log1pf(__expf(v))",
    "sum": "v", "sumsq": "v * v", "l1": "fabsf(v)",
}


def _to_float(dt: str, e: str) -> str:
    return {"f32": e, "f16": f"__half2float({e})", "bf16": f"__bfloat162float({e})"}[dt]


def _from_float(dt: str, e: str) -> str:
    return {"f32": e, "f16": f"__float2half({e})", "bf16": f"__float2bfloat16({e})"}[dt]


def _cuda_const(p: CudaParams, name: str, value: int) -> str:
    return {"define": f"#define {name} {value}", "constexpr": f"constexpr int {name} = {value};",
            "static": f"static constexpr int {name} = {value};"}[p.const_style]


def _cuda_includes(p: CudaParams) -> list[str]:
    lines = ["#include <cuda_runtime.h>"]
    if p.dtype == "f16":
        lines.append("#include <cuda_fp16.h>")
    elif p.dtype == "bf16":
        lines.append("#include <cuda_bf16.h>")
    if p.launch_check == "c10":
        lines.append("#include <c10/cuda/CUDAException.h>")
    if p.include_cstdint:
        lines.append("#include <cstdint>")
    return lines + [""]


def _restrict(p: CudaParams) -> str:
    return " __restrict__" if p.restrict else ""


def _launch_bounds(p: CudaParams, threads: str) -> str:
    return f"__launch_bounds__({threads}, {p.min_blocks_per_sm}) " if p.min_blocks_per_sm else ""


def _launch(p: CudaParams, name: str, grid: str, block: str, args: str, smem: str = "0") -> list[str]:
    if p.stream:
        cfg = f"{grid}, {block}, {smem}, stream"
    else:
        cfg = f"{grid}, {block}" + (f", {smem}" if smem != "0" else "")
    lines = [f"    {name}<<<{cfg}>>>({args});"]
    if p.launch_check == "c10":
        lines.append("    C10_CUDA_KERNEL_LAUNCH_CHECK();")
    elif p.launch_check == "cuda":
        lines.append("    cudaGetLastError();")
    return lines


def _stream_param(p: CudaParams) -> str:
    return ", cudaStream_t stream" if p.stream else ""


def _pragma(p: CudaParams) -> list[str]:
    return [f"#pragma unroll {p.unroll_name}"] if p.unroll else []


def _cuda_unroll_const(p: CudaParams) -> list[str]:
    return [_cuda_const(p, p.unroll_name, p.unroll_factor)] if p.unroll else []


CUDA_ACTIVATIONS = {"relu": "fmaxf(v, 0.f)", "gelu": "0.5f * v * (1.f + erff(v * 0.70710678f))",
                    "clamp": "fminf(fmaxf(v, -{c}f), {c}f)"}


def _cuda_epilogue_helpers(p: CudaParams) -> list[str]:
    """A __device__ helper for an activation epilogue (relu, gelu, clamp, bias_relu)."""
    act = {"bias_relu": "relu"}.get(p.epilogue, p.epilogue)
    if act not in CUDA_ACTIVATIONS:
        return []
    return [f"__device__ __forceinline__ float {p.epilogue_fn_format.format(act)}(float v) {{",
            f"    return {CUDA_ACTIVATIONS[act].format(c=p.clamp_limit)};", "}", ""]


def _indent(lines: list[str], n: int) -> list[str]:
    pad = " " * n
    return [pad + line if line and not line.startswith("#") else line for line in lines]


def _block_reduce(p: CudaParams, kind: str) -> list[str]:
    """__device__ helpers reducing a float over the block (shared-memory tree or warp shuffles)."""
    comb = "fmaxf({a}, {b})" if kind == "max" else "{a} + {b}"
    init = "-INFINITY" if kind == "max" else "0.f"
    if p.reduce == "shuffle":
        return [
            f"__device__ __forceinline__ float warp_reduce_{kind}(float v) {{",
            "    for (int offset = 16; offset > 0; offset >>= 1) {",
            f"        v = {comb.format(a='v', b='__shfl_xor_sync(0xffffffff, v, offset)')};",
            "    }",
            "    return v;",
            "}",
            "",
            f"__device__ float block_reduce_{kind}(float v) {{",
            f"    __shared__ float {p.warp_buffer_name}[32];",
            "    const int lane = threadIdx.x % 32;",
            "    const int warp = threadIdx.x / 32;",
            f"    v = warp_reduce_{kind}(v);",
            f"    if (lane == 0) {p.warp_buffer_name}[warp] = v;",
            "    __syncthreads();",
            f"    v = lane < BLOCK_SIZE / 32 ? {p.warp_buffer_name}[lane] : {init};",
            f"    return warp_reduce_{kind}(v);",
            "}",
            "",
        ]
    buf = p.shared_buffer_name
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


def _cuda_epilogue(p: CudaParams, var: str, idx: str) -> list[str]:
    e, dt = p.epilogue, p.dtype
    if e == "scale" or e == "alpha":
        return [f"{var} *= {p.scale_name};"]
    if e == "bias":
        return [f"{var} += {_to_float(dt, p.bias_name + '[' + idx + ']')};"]
    if e == "residual":
        return [f"{var} += {_to_float(dt, p.residual_name + '[' + idx + ']')};"]
    if e == "bias_relu":
        return [f"{var} = {p.epilogue_fn_format.format('relu')}({var} + {_to_float(dt, p.bias_name + '[' + idx + ']')});"]
    if e in CUDA_ACTIVATIONS:
        return [f"{var} = {p.epilogue_fn_format.format(e)}({var});"]
    return []


def _cuda_epilogue_params(p: CudaParams, T: str) -> tuple[str, str]:
    """(kernel parameter declarations, call arguments) added by the epilogue."""
    e, r = p.epilogue, _restrict(p)
    if e in ("scale", "alpha"):
        return f", float {p.scale_name}", f", {p.scale_name}"
    if e in ("bias", "bias_relu"):
        return f", const {T}*{r} {p.bias_name}", f", {p.bias_name}"
    if e == "residual":
        return f", const {T}*{r} {p.residual_name}", f", {p.residual_name}"
    return "", ""


def render_cuda_elementwise(p: CudaParams) -> str:
    T, dt, n, (x, y) = CUDA_T[p.dtype], p.dtype, p.size_name, p.pointer_names
    r = _restrict(p)
    eparams, eargs = _cuda_epilogue_params(p, T)
    out = _cuda_includes(p)
    out += [_cuda_const(p, "BLOCK_SIZE", p.block), _cuda_const(p, "ITEMS_PER_THREAD", p.items_per_thread),
            *_cuda_unroll_const(p), ""]
    out += _cuda_epilogue_helpers(p)
    out += [f"__device__ __forceinline__ float {p.op}_op(float v) {{", f"    return {CUDA_OP[p.op]};", "}", ""]
    out += [f"__global__ void {_launch_bounds(p, 'BLOCK_SIZE')}{p.name}(const {T}*{r} {x}, {T}*{r} {y}{eparams}, "
            f"{p.size_type} {n}) {{",
            "    const int base = blockIdx.x * (BLOCK_SIZE * ITEMS_PER_THREAD) + threadIdx.x;"]
    if not p.vectorize:
        body = [f"const int i = base + k * BLOCK_SIZE;", f"if (i < {n}) {{",
                f"    float v = {_to_float(dt, x + '[i]')};", f"    v = {p.op}_op(v);",
                *["    " + s for s in _cuda_epilogue(p, "v", "i")],
                f"    {y}[i] = {_from_float(dt, 'v')};", "}"]
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
            body.append(f"    {{ float v = {src}.{lane}; v = {p.op}_op(v);")
            body += ["      " + s for s in _cuda_epilogue(p, "v", f"i * {W} + {li}")]
            body.append(f"      {src}.{lane} = v; }}")
        if dt != "f32":
            back = "__float22half2_rn" if dt == "f16" else "__float22bfloat162_rn"
            body.append(f"    packed = {back}(f);")
        body += [f"    {y}_vec[i] = packed;", "}"]
    out += _pragma(p)
    out += ["    for (int k = 0; k < ITEMS_PER_THREAD; ++k) {", *_indent(body, 8), "    }", "}", ""]
    div = f"{n} / {CUDA_VEC[dt][1]}" if p.vectorize else n
    out += [f"void {p.name}_launch(const {T}* {x}, {T}* {y}{eparams.replace(r, '')}, {p.size_type} {n}"
            f"{_stream_param(p)}) {{",
            f"    const int blocks = ({div} + BLOCK_SIZE * ITEMS_PER_THREAD - 1) / (BLOCK_SIZE * ITEMS_PER_THREAD);",
            *_launch(p, p.name, "blocks", "BLOCK_SIZE", f"{x}, {y}{eargs}, {n}"), "}", ""]
    return "\n".join(out)


def render_cuda_reduction(p: CudaParams) -> str:
    T, dt, n, (x, out_name) = CUDA_T[p.dtype], p.dtype, p.size_name, p.pointer_names
    r = _restrict(p)
    e = p.epilogue
    eparams = f", float {p.scale_name}" if e == "scale" else (f", const {T}*{r} w" if e == "weighted" else "")
    eargs = f", {p.scale_name}" if e == "scale" else (", w" if e == "weighted" else "")
    out = _cuda_includes(p)
    out += [_cuda_const(p, "BLOCK_SIZE", p.block), _cuda_const(p, "MAX_BLOCKS", p.max_blocks),
            *_cuda_unroll_const(p), ""]
    if p.reduce != "atomic":
        out += _block_reduce(p, "sum")
    out += [f"__global__ void {_launch_bounds(p, 'BLOCK_SIZE')}{p.name}(const {T}*{r} {x}, float*{r} {out_name}"
            f"{eparams}, {p.size_type} {n}) {{",
            "    float acc = 0.f;"]
    op = CUDA_OP[p.op]
    if not p.vectorize:
        out += ["    const int stride = BLOCK_SIZE * gridDim.x;", *_pragma(p),
                f"    for (int i = blockIdx.x * BLOCK_SIZE + threadIdx.x; i < {n}; i += stride) {{",
                f"        float v = {_to_float(dt, x + '[i]')};"]
        if e == "weighted":
            out.append(f"        v *= {_to_float(dt, 'w[i]')};")
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
            weight = f" * {_to_float(dt, f'w[i * {W} + {li}]')}" if e == "weighted" else ""
            out.append(f"        {{ const float v = {src}.{lane}{weight}; acc += {op}; }}")
        out.append("    }")
    scaled = f"acc * {p.scale_name}" if e == "scale" else "acc"
    if p.reduce == "atomic":
        out += [f"    atomicAdd({out_name}, {scaled});", "}", ""]
    else:
        out += ["    acc = block_reduce_sum(acc);", f"    if (threadIdx.x == 0) atomicAdd({out_name}, {scaled});",
                "}", ""]
    out += [f"void {p.name}_launch(const {T}* {x}, float* {out_name}{eparams.replace(r, '')}, "
            f"{p.size_type} {n}{_stream_param(p)}) {{",
            f"    int blocks = ({n} + BLOCK_SIZE - 1) / BLOCK_SIZE;",
            "    if (blocks > MAX_BLOCKS) blocks = MAX_BLOCKS;",
            f"    cudaMemsetAsync({out_name}, 0, sizeof(float){', stream' if p.stream else ''});",
            *_launch(p, p.name, "blocks", "BLOCK_SIZE", f"{x}, {out_name}{eargs}, {n}"), "}", ""]
    return "\n".join(out)


def render_cuda_softmax(p: CudaParams) -> str:
    T, dt, (x, y) = CUDA_T[p.dtype], p.dtype, p.pointer_names
    r = _restrict(p)
    e, cache = p.epilogue, p.cache_row
    eparams = f", float {p.scale_name}" if e == "scale" else ""
    eargs = f", {p.scale_name}" if e == "scale" else ""
    load = _to_float(dt, "row_in[c]") + (f" * {p.scale_name}" if e == "scale" else "")
    again = "row_cache[c]" if cache else load
    out = _cuda_includes(p) + [_cuda_const(p, "BLOCK_SIZE", p.block), *_cuda_unroll_const(p), ""]
    out += _block_reduce(p, "max") + _block_reduce(p, "sum")
    out += [f"__global__ void {_launch_bounds(p, 'BLOCK_SIZE')}{p.name}(const {T}*{r} {x}, {T}*{r} {y}, int cols{eparams}) {{",
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
        out.append(f"        row_out[c] = {_from_float(dt, again + ' - row_max - __logf(row_sum)')};")
    else:
        out.append(f"        row_out[c] = {_from_float(dt, '__expf(' + again + ' - row_max) / row_sum')};")
    out += ["    }", "}", ""]
    smem = "cols * sizeof(float)" if cache else "0"
    out += [f"void {p.name}_launch(const {T}* {x}, {T}* {y}, int rows, int cols{eparams}{_stream_param(p)}) {{",
            *_launch(p, p.name, "rows", "BLOCK_SIZE", f"{x}, {y}, cols{eargs}", smem), "}", ""]
    return "\n".join(out)


def render_cuda_layernorm(p: CudaParams) -> str:
    T, dt, (x, y) = CUDA_T[p.dtype], p.dtype, p.pointer_names
    r = _restrict(p)
    e, cache = p.epilogue, p.cache_row
    eparams = f", const {T}*{r} {p.residual_name}" if e == "residual" else ""
    eargs = f", {p.residual_name}" if e == "residual" else ""
    load = _to_float(dt, "xr[c]") + (" + " + _to_float(dt, f"{p.residual_name}[(size_t)row * cols + c]") if e == "residual" else "")
    again = "row_cache[c]" if cache else load
    out = _cuda_includes(p) + [_cuda_const(p, "BLOCK_SIZE", p.block), *_cuda_unroll_const(p), ""]
    out += _block_reduce(p, "sum") + _cuda_epilogue_helpers(p)
    out += [f"__global__ void {_launch_bounds(p, 'BLOCK_SIZE')}{p.name}(const {T}*{r} {x}, const {T}*{r} gamma, "
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
            f"        float o = ({again} - mean) * rstd * {_to_float(dt, 'gamma[c]')} + {_to_float(dt, 'beta[c]')};"]
    if e in ("relu", "gelu"):
        out += ["        " + s for s in _cuda_epilogue(p, "o", "c")]
    out += [f"        yr[c] = {_from_float(dt, 'o')};", "    }", "}", ""]
    smem = "cols * sizeof(float)" if cache else "0"
    out += [f"void {p.name}_launch(const {T}* {x}, const {T}* gamma, const {T}* beta, {T}* {y}, int rows, "
            f"int cols{eparams.replace(r, '')}{_stream_param(p)}) {{",
            *_launch(p, p.name, "rows", "BLOCK_SIZE", f"{x}, gamma, beta, {y}, cols, {p.eps}{eargs}", smem),
            "}", ""]
    return "\n".join(out)


def render_cuda_gemm(p: CudaParams) -> str:
    T, dt = CUDA_T[p.dtype], p.dtype
    r = _restrict(p)
    TL = p.tile_name
    eparams, eargs = _cuda_epilogue_params(p, T)
    zero = _from_float(dt, "0.f")
    out = _cuda_includes(p) + [_cuda_const(p, TL, p.block), *_cuda_unroll_const(p), ""]
    out += _cuda_epilogue_helpers(p)
    out += [f"__global__ void {_launch_bounds(p, f'{TL} * {TL}')}{p.name}(const {T}*{r} A, const {T}*{r} B, {T}*{r} C, "
            f"int M, int N, int K{eparams}) {{",
            f"    const int row = blockIdx.y * {TL} + threadIdx.y;",
            f"    const int col = blockIdx.x * {TL} + threadIdx.x;",
            "    float acc = 0.f;"]
    if p.shared_tiles:
        out += [f"    __shared__ {T} As[{TL}][{TL}];", f"    __shared__ {T} Bs[{TL}][{TL}];",
                f"    for (int t = 0; t < (K + {TL} - 1) / {TL}; ++t) {{",
                f"        const int a_col = t * {TL} + threadIdx.x;",
                f"        const int b_row = t * {TL} + threadIdx.y;",
                f"        As[threadIdx.y][threadIdx.x] = (row < M && a_col < K) ? A[row * K + a_col] : {zero};",
                f"        Bs[threadIdx.y][threadIdx.x] = (b_row < K && col < N) ? B[b_row * N + col] : {zero};",
                "        __syncthreads();", *_pragma(p),
                f"        for (int k = 0; k < {TL}; ++k) {{",
                f"            acc += {_to_float(dt, 'As[threadIdx.y][k]')} * {_to_float(dt, 'Bs[k][threadIdx.x]')};",
                "        }", "        __syncthreads();", "    }",
                "    if (row >= M || col >= N) return;"]
    else:
        out += ["    if (row >= M || col >= N) return;", *_pragma(p),
                "    for (int k = 0; k < K; ++k) {",
                f"        acc += {_to_float(dt, 'A[row * K + k]')} * {_to_float(dt, 'B[k * N + col]')};", "    }"]
    out += ["    " + s for s in _cuda_epilogue(p, "acc", "col")]
    out += [f"    C[row * N + col] = {_from_float(dt, 'acc')};", "}", ""]
    out += [f"void {p.name}_launch(const {T}* A, const {T}* B, {T}* C, int M, int N, int K"
            f"{eparams.replace(r, '')}{_stream_param(p)}) {{",
            f"    dim3 block({TL}, {TL});",
            f"    dim3 grid((N + {TL} - 1) / {TL}, (M + {TL} - 1) / {TL});",
            *_launch(p, p.name, "grid", "block", f"A, B, C, M, N, K{eargs}"), "}", ""]
    return "\n".join(out)
