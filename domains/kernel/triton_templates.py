"""Triton templates of the five kernel families, rendered from a :class:`~wmkit_kernel.params.TritonParams`."""

from __future__ import annotations

from .params import TritonParams

TL_T = {"f32": "tl.float32", "f16": "tl.float16", "bf16": "tl.bfloat16"}
TORCH_T = {"f32": "torch.float32", "f16": "torch.float16", "bf16": "torch.bfloat16"}
TL_OP = {
    "relu": "tl.maximum({v}, 0.0)", "gelu": "0.5 * {v} * (1.0 + tl.erf({v} * 0.7071067811865476))",
    "silu": "{v} * tl.sigmoid({v})", "sigmoid": "tl.sigmoid({v})", "square": "{v} * {v}", "abs": "tl.abs({v})",
    "exp": "tl.exp({v})", "tanh": "2.0 * tl.sigmoid(2.0 * {v}) - 1.0", "softplus": "tl.log(1.0 + tl.exp({v}))",
    "sum": "{v}", "sumsq": "{v} * {v}", "l1": "tl.abs({v})",
}


def _tl_epilogue(p: TritonParams, var: str, offs: str, mask: str) -> list[str]:
    e = p.epilogue
    if e in ("scale", "alpha"):
        return [f"{var} = {var} * {p.scale_name}"]
    if e in ("bias", "bias_relu"):
        lines = [f"{var} += tl.load(bias_ptr + {offs}, mask={mask}, other=0.0).to(tl.float32)"]
        if e == "bias_relu":
            lines += ['if ACTIVATION == "relu":', f"    {var} = tl.maximum({var}, 0.0)"]
        return lines
    if e == "residual":
        return [f"{var} += tl.load(res_ptr + {offs}, mask={mask}, other=0.0).to(tl.float32)"]
    if e in TL_ACTIVATIONS:
        return [f'if ACTIVATION == "{e}":', f"    {var} = {TL_ACTIVATIONS[e].format(v=var, c=p.clamp_limit)}"]
    return []


TL_ACTIVATIONS = {"relu": "tl.maximum({v}, 0.0)", "gelu": "0.5 * {v} * (1.0 + tl.erf({v} * 0.7071067811865476))",
                  "clamp": "tl.minimum(tl.maximum({v}, -{c}), {c})"}


def _tl_activation(p: TritonParams) -> tuple[str, list[str]]:
    """(signature suffix, launch kwargs) of an activation epilogue chosen by a constexpr flag."""
    act = {"bias_relu": "relu"}.get(p.epilogue, p.epilogue)
    if act not in TL_ACTIVATIONS:
        return "", []
    return ", ACTIVATION: tl.constexpr", [f'ACTIVATION="{act}"']


def _tl_epilogue_params(p: TritonParams) -> tuple[str, str, str]:
    """(kernel params, launcher params, call args) added by the epilogue."""
    e = p.epilogue
    if e in ("scale", "alpha"):
        return f"{p.scale_name}, ", f", {p.scale_name}: float = 1.0", f"{p.scale_name}, "
    if e in ("bias", "bias_relu"):
        return "bias_ptr, ", ", bias: torch.Tensor", "bias, "
    if e == "residual":
        return "res_ptr, ", ", residual: torch.Tensor", "residual, "
    return "", "", ""


def _tl_header(p: TritonParams) -> list[str]:
    lines = ["import math"] if p.import_math else []
    return lines + ["import torch", "import triton", "import triton.language as tl", "", ""]


def _tl_launch_kwargs(p: TritonParams, consts: list[str]) -> str:
    kw = consts + [f"num_warps={p.num_warps}"]
    if p.num_stages:
        kw.append(f"num_stages={p.num_stages}")
    return ", ".join(kw)


def _tl_loop(p: TritonParams, var: str, args: str, constexpr_bound: bool) -> str:
    if not p.unroll:
        return f"for {var} in range({args}):"
    if constexpr_bound:
        return f"for {var} in tl.static_range({args}):"
    return f"for {var} in tl.range({args}, loop_unroll_factor={p.unroll_factor or 2}):"


def _tl_hint(p: TritonParams, offs: str, block: str) -> list[str]:
    return [f"{offs} = tl.max_contiguous(tl.multiple_of({offs}, {block}), {block})"] if p.vectorize else []


def _tl_block_binding(p: TritonParams, name: str, value: int, consts: list[str], host: list[str]) -> None:
    if p.host_constants:
        host.append(f"    {name} = {value}")
        consts.append(f"{name}={name}")
    else:
        consts.append(f"{name}={value}")


def render_triton_elementwise(p: TritonParams) -> str:
    (x, y), n, pid, offs = p.pointer_names, p.size_name, p.pid_name, p.offsets_name
    kparams, hparams, cargs = _tl_epilogue_params(p)
    act_sig, act_kw = _tl_activation(p)
    iters = p.iters
    out = _tl_header(p) + ["@triton.jit",
                           f"def {p.name}_kernel({x}, {y}, {kparams}{n}, BLOCK_SIZE: tl.constexpr"
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
             f"y = {TL_OP[p.op].format(v='x')}",
             *_tl_epilogue(p, "y", offs, "mask"),
             f"tl.store({y} + {offs}, y.to({TL_T[p.dtype]}), mask=mask)"]
    if iters > 1:
        out.append("    " + _tl_loop(p, "it", "ITERS", True))
        out += ["        " + s for s in body]
    else:
        out += ["    " + s for s in body]
    out += ["", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p.block, consts, host)
    if iters > 1:
        consts.append(f"ITERS={iters}")
    consts += act_kw
    block_expr = "BLOCK_SIZE" if p.host_constants else str(p.block)
    out += [f"def {p.name}(x: torch.Tensor{hparams}) -> torch.Tensor:",
            f"    out = torch.empty_like(x, dtype={TORCH_T[p.dtype]})",
            f"    {n} = x.numel()", *host,
            f"    grid = (triton.cdiv({n}, {block_expr}{' * ' + str(iters) if iters > 1 else ''}),)",
            f"    {p.name}_kernel[grid](x, out, {cargs}{n}, {_tl_launch_kwargs(p, consts)})",
            "    return out", ""]
    return "\n".join(out)


def render_triton_reduction(p: TritonParams) -> str:
    (x, y), pid = p.pointer_names, p.pid_name
    e = p.epilogue
    kparams = f"{p.scale_name}, " if e == "scale" else ("w_ptr, " if e == "weighted" else "")
    hparams = f", {p.scale_name}: float = 1.0" if e == "scale" else (", weight: torch.Tensor" if e == "weighted" else "")
    cargs = f"{p.scale_name}, " if e == "scale" else ("weight, " if e == "weighted" else "")
    out = _tl_header(p) + ["@triton.jit",
                           f"def {p.name}_kernel({x}, {y}, {kparams}n_cols, stride_row, "
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
    out += [f"        acc += {TL_OP[p.op].format(v='v')}",
            "    total = tl.sum(acc, axis=0)"]
    if e == "scale":
        out.append(f"    total = total * {p.scale_name}")
    out += [f"    tl.store({y} + {pid}, total.to({TL_T[p.dtype]}))", "", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p.block, consts, host)
    block_expr = "BLOCK_SIZE" if p.host_constants else str(p.block)
    consts.append("NUM_CHUNKS=num_chunks")
    out += [f"def {p.name}(x: torch.Tensor{hparams}) -> torch.Tensor:",
            "    n_rows, n_cols = x.shape",
            f"    out = torch.empty((n_rows,), device=x.device, dtype={TORCH_T[p.dtype]})", *host,
            f"    num_chunks = triton.cdiv(n_cols, {block_expr})",
            f"    {p.name}_kernel[(n_rows,)](x, out, {cargs}n_cols, x.stride(0), {_tl_launch_kwargs(p, consts)})",
            "    return out", ""]
    return "\n".join(out)


def render_triton_softmax(p: TritonParams) -> str:
    (x, y), pid = p.pointer_names, p.pid_name
    e = p.epilogue
    kparams = f"{p.scale_name}, " if e == "scale" else ""
    hparams = f", {p.scale_name}: float = 1.0" if e == "scale" else ""
    cargs = f"{p.scale_name}, " if e == "scale" else ""
    scale = f" * {p.scale_name}" if e == "scale" else ""
    load = 'tl.load(row_in + cols, mask=mask, other=-float("inf")).to(tl.float32)' + scale
    out = _tl_header(p) + ["@triton.jit",
                           f"def {p.name}_kernel({y}, {x}, in_stride, out_stride, n_cols, {kparams}"
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
    out += [f"        tl.store(row_out + cols, result.to({TL_T[p.dtype]}), mask=mask)", "", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p.block, consts, host)
    out += [f"def {p.name}(x: torch.Tensor{hparams}) -> torch.Tensor:",
            "    n_rows, n_cols = x.shape",
            f"    out = torch.empty(x.shape, device=x.device, dtype={TORCH_T[p.dtype]})", *host,
            f"    {p.name}_kernel[(n_rows,)](out, x, x.stride(0), out.stride(0), n_cols, {cargs}"
            f"{_tl_launch_kwargs(p, consts)})",
            "    return out", ""]
    return "\n".join(out)


def render_triton_layernorm(p: TritonParams) -> str:
    (x, y), pid = p.pointer_names, p.pid_name
    e = p.epilogue
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
                           f"def {p.name}_kernel({x}, {y}, W, B, {kparams}stride, N, eps, "
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
    out += [f"        tl.store(row_y + cols, out.to({TL_T[p.dtype]}), mask=mask)", "", ""]
    consts: list[str] = []
    host: list[str] = []
    _tl_block_binding(p, "BLOCK_SIZE", p.block, consts, host)
    consts += act_kw
    out += [f"def {p.name}(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor{hparams}, "
            f"eps: float = {p.eps}) -> torch.Tensor:",
            "    n_rows, N = x.shape",
            f"    y = torch.empty(x.shape, device=x.device, dtype={TORCH_T[p.dtype]})", *host,
            f"    {p.name}_kernel[(n_rows,)](x, y, weight, bias, {cargs}x.stride(0), N, eps, "
            f"{_tl_launch_kwargs(p, consts)})",
            "    return y", ""]
    return "\n".join(out)


def render_triton_gemm(p: TritonParams) -> str:
    kparams, hparams, cargs = _tl_epilogue_params(p)
    act_sig, act_kw = _tl_activation(p)
    out = _tl_header(p)
    if p.autotune:
        stages = f", num_stages={p.num_stages}" if p.num_stages else ""
        out += ["@triton.autotune(",
                f"    configs=[triton.Config({{'BLOCK_M': {p.block_m}, 'BLOCK_N': {p.block_n}, 'BLOCK_K': {p.block_k}}}, "
                f"num_warps={p.num_warps}{stages})],",
                "    key=['M', 'N', 'K'],", ")"]
    out += ["@triton.jit",
            f"def {p.name}_kernel(a_ptr, b_ptr, c_ptr, {kparams}M, N, K, stride_am, stride_ak, stride_bk, stride_bn,",
            "        stride_cm, stride_cn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr"
            + act_sig + "):",
            "    pid_m = tl.program_id(0)", "    pid_n = tl.program_id(1)",
            "    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
            "    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
            *["    " + s for s in _tl_hint(p, "offs_m", "BLOCK_M") + _tl_hint(p, "offs_n", "BLOCK_N")],
            "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)"]
    loop = "    " + _tl_loop(p, "k", "0, tl.cdiv(K, BLOCK_K)", False)
    if p.block_ptr:
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
    out += [f"    c = acc.to({TL_T[p.dtype]})",
            "    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn",
            "    tl.store(c_ptrs, c, mask=c_mask)", "", ""]
    out += [f"def {p.name}(a: torch.Tensor, b: torch.Tensor{hparams}) -> torch.Tensor:",
            "    M, K = a.shape", "    _, N = b.shape",
            f"    c = torch.empty((M, N), device=a.device, dtype={TORCH_T[p.dtype]})"]
    call_args = f"a, b, c, {cargs}M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1)"
    if p.autotune:
        out += ["    grid = lambda meta: (triton.cdiv(M, meta['BLOCK_M']), triton.cdiv(N, meta['BLOCK_N']))",
                f"    {p.name}_kernel[grid]({', '.join([call_args, *act_kw])})"]
    else:
        consts: list[str] = []
        host: list[str] = []
        for field, name in (("block_m", "BLOCK_M"), ("block_n", "BLOCK_N"), ("block_k", "BLOCK_K")):
            _tl_block_binding(p, name, getattr(p, field), consts, host)
        consts += act_kw
        bm = "BLOCK_M" if p.host_constants else str(p.block_m)
        bn = "BLOCK_N" if p.host_constants else str(p.block_n)
        out += [*host, f"    grid = (triton.cdiv(M, {bm}), triton.cdiv(N, {bn}))",
                f"    {p.name}_kernel[grid]({call_args}, {_tl_launch_kwargs(p, consts)})"]
    out += ["    return c", ""]
    return "\n".join(out)
