"""Lexer-based tokenizer for GPU-kernel sources: CUDA C++ and Triton (Python with ``@triton.jit``).

Described in full in docs/kernel.md#vocabulary-kernel-lex-1.
"""

from __future__ import annotations

import functools
import math
import re
from typing import NamedTuple

from wmkit.domain import Vocabulary

VOCAB_VERSION = "kernel-lex-1"

RANGES: dict[str, tuple[int, int]] = {
    "special": (0, 8),
    "language": (8, 16),
    "category": (16, 64),
    "operator": (64, 128),
    "keyword": (128, 320),
    "kernel": (320, 768),
    "number": (768, 1024),
    "identifier": (1024, 2048),
}
VOCAB_SIZE = 2048
IDENT_BUCKETS = RANGES["identifier"][1] - RANGES["identifier"][0]

PAD, BOS, EOS, UNK = 0, 1, 2, 3
LANGUAGES = ("cuda", "triton")
LANG_ID = {"cuda": 8, "triton": 9}

CATEGORIES = (
    "keyword", "operator", "punctuation", "string", "docstring", "char", "number", "decorator",
    "preproc", "include", "define", "conditional", "else", "endif", "pragma", "undef", "error",
    "other", "name",
)

OPERATORS = (
    "(", ")", "[", "]", "{", "}", ";", ",", ".", ":", "::", "?", "~", "!", "+", "-", "*", "/",
    "%", "=", "<", ">", "&", "|", "^", "@", "#", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
    "<<=", ">>=", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "++", "--", "->", "...", "**",
    "//", "**=", "//=", ":=", "@=", "\\", "$", "`",
)

KEYWORDS = (
    # C / C++
    "alignas", "alignof", "asm", "auto", "bool", "break", "case", "catch", "char", "class", "const",
    "consteval", "constexpr", "constinit", "const_cast", "continue", "decltype", "default", "delete",
    "do", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "for", "friend",
    "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "nullptr",
    "operator", "private", "protected", "public", "register", "reinterpret_cast", "requires",
    "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct",
    "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid",
    "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while",
    "size_t", "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t",
    "uint64_t", "intptr_t", "uintptr_t", "ptrdiff_t", "std", "__volatile__", "__asm__", "__inline__",
    # Python
    "False", "None", "True", "and", "as", "assert", "async", "await", "def", "del", "elif",
    "except", "finally", "from", "global", "import", "in", "is", "lambda", "nonlocal", "not", "or",
    "pass", "raise", "with", "yield", "self", "range", "len", "min", "max",
)

# Vector types and their element counts (used by the action's vector-width dimension too).
VECTOR_TYPES = {
    "float2": 2, "float3": 3, "float4": 4, "double2": 2, "double4": 4, "int2": 2, "int3": 3,
    "int4": 4, "uint2": 2, "uint4": 4, "char2": 2, "char4": 4, "uchar2": 2, "uchar4": 4,
    "short2": 2, "short4": 4, "ushort2": 2, "ushort4": 4, "longlong2": 2, "half2": 2, "__half2": 2,
    "nv_bfloat162": 2, "__nv_bfloat162": 2, "__nv_fp8x2_e4m3": 2, "__nv_fp8x4_e4m3": 4,
    "__nv_fp8x2_e5m2": 2, "__nv_fp8x4_e5m2": 4,
}

# Floating-point types and their precision p (significand bits including the implicit one:
# fp64 53, fp32 24, tf32 11, fp16 11, bf16 8, fp8 e4m3 4, fp8 e5m2 3), per language; used by the
# action's dtype dimension. Precision, not width, so that fp16 <-> bf16 is a visible change.
_P64, _P32, _PTF32, _P16, _PBF16, _PE4M3, _PE5M2 = 53, 24, 11, 11, 8, 4, 3
CUDA_DTYPE_PRECISION = {
    "double": _P64, "double2": _P64, "double4": _P64, "float": _P32, "float2": _P32, "float3": _P32,
    "float4": _P32, "tfloat32_t": _PTF32, "half": _P16, "__half": _P16, "half2": _P16, "__half2": _P16,
    "half_t": _P16, "__nv_bfloat16": _PBF16, "nv_bfloat16": _PBF16, "__nv_bfloat162": _PBF16,
    "nv_bfloat162": _PBF16, "bfloat16_t": _PBF16, "__nv_fp8_e4m3": _PE4M3, "__nv_fp8_e5m2": _PE5M2,
    "__nv_fp8x2_e4m3": _PE4M3, "__nv_fp8x4_e4m3": _PE4M3, "__nv_fp8x2_e5m2": _PE5M2,
    "__nv_fp8x4_e5m2": _PE5M2, "float_e4m3_t": _PE4M3, "float_e5m2_t": _PE5M2,
}
TRITON_DTYPE_PRECISION = {
    "tl.float64": _P64, "tl.float32": _P32, "tl.float16": _P16, "tl.bfloat16": _PBF16,
    "tl.float8e4nv": _PE4M3, "tl.float8e5": _PE5M2, "tl.float8e4b15": _PE4M3, "tl.float8e4b8": _PE4M3,
    "tl.float8e5b16": _PE5M2, "torch.float64": _P64, "torch.double": _P64, "torch.float32": _P32,
    "torch.float": _P32, "torch.float16": _P16, "torch.half": _P16, "torch.bfloat16": _PBF16,
    "torch.float8_e4m3fn": _PE4M3, "torch.float8_e5m2": _PE5M2, "torch.float8_e4m3fnuz": _PE4M3,
    "torch.float8_e5m2fnuz": _PE5M2,
}

TILE_TOKENS = ("<tile:M>", "<tile:N>", "<tile:K>", "<tile>")
PTX_TOKENS = (
    "ptx:cp.async.wait", "ptx:cp.async", "ptx:wgmma", "ptx:mma", "ptx:ldmatrix", "ptx:stmatrix",
    "ptx:bar", "ptx:fence", "ptx:ld", "ptx:st", "ptx:red", "ptx:other",
)
# a PTX instruction inside a string (``asm volatile("cp.async.cg.shared.global ...")``):
# an opcode with at least one ``.modifier``, at an instruction boundary, optionally predicated
_PTX_INSTRUCTION = re.compile(
    r"(?:^|[\s;{}])(?:@!?%?\w+\s+)?((?:cp\.async|wgmma|mma|ldmatrix|stmatrix|bar|barrier|mbarrier|fence|"
    r"membar|ld|st|red|atom|cvt|mov|shfl|vote|prmt|lop3)(?:\.[a-z0-9_]+)+)")
_PTX_FAMILY = {"wgmma": "ptx:wgmma", "mma": "ptx:mma", "ldmatrix": "ptx:ldmatrix", "stmatrix": "ptx:stmatrix",
               "bar": "ptx:bar", "barrier": "ptx:bar", "mbarrier": "ptx:bar", "fence": "ptx:fence",
               "membar": "ptx:fence", "ld": "ptx:ld", "st": "ptx:st", "red": "ptx:red", "atom": "ptx:red"}


def ptx_token(content: str) -> str | None:
    """The PTX token of the first PTX instruction in a string, or ``None`` when there is none."""
    match = _PTX_INSTRUCTION.search(content.replace("\\n", " ").replace("\\t", " "))
    if match is None:
        return None
    instruction = match.group(1)
    if instruction.startswith("cp.async"):
        return "ptx:cp.async.wait" if (".wait" in instruction or ".commit" in instruction) else "ptx:cp.async"
    return _PTX_FAMILY.get(instruction.split(".", 1)[0], "ptx:other")


_BUILTIN_DIMS = tuple(f"{b}.{a}" for b in ("threadIdx", "blockIdx", "blockDim", "gridDim")
                      for a in ("x", "y", "z"))

KERNEL_TOKENS = (
    # CUDA qualifiers and launch
    "__global__", "__device__", "__host__", "__shared__", "__constant__", "__managed__",
    "__forceinline__", "__noinline__", "__launch_bounds__", "__restrict__", "__align__",
    "__grid_constant__", "__cluster_dims__", "<<<", ">>>", "#pragma unroll", "dim3",
    "cudaLaunchKernel", "cudaLaunchKernelEx", "cudaLaunchCooperativeKernel", "cudaStream_t",
    "cudaFuncSetAttribute", "cudaFuncAttributeMaxDynamicSharedMemorySize",
    "cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaGetLastError", "cudaMalloc",
    "cudaFree", "cudaMemcpy", "cudaMemcpyAsync", "cudaMemset", "cudaMemsetAsync", "cudaEvent_t",
    "cudaError_t", "cudaSuccess", "cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost",
    "cudaOccupancyMaxActiveBlocksPerMultiprocessor", "cudaDeviceProp", "cudaGetDeviceProperties",
    "C10_CUDA_KERNEL_LAUNCH_CHECK", "at::cuda", "getCurrentCUDAStream",
    # thread geometry
    "threadIdx", "blockIdx", "blockDim", "gridDim", *_BUILTIN_DIMS, "warpSize",
    # barriers and fences
    "__syncthreads", "__syncthreads_count", "__syncthreads_and", "__syncthreads_or", "__syncwarp",
    "__threadfence", "__threadfence_block", "__threadfence_system", "__nanosleep",
    "__pipeline_wait_prior", "__pipeline_commit", "__pipeline_memcpy_async", "cp_async_wait",
    "cp_async_fence", "arrive_and_wait",
    # warp-level primitives
    "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync", "__shfl_down",
    "__shfl_xor", "__ballot_sync", "__any_sync", "__all_sync", "__activemask", "__match_any_sync",
    "__reduce_add_sync", "__reduce_max_sync", "__popc", "__ffs", "__clz",
    # atomics
    "atomicAdd", "atomicSub", "atomicMax", "atomicMin", "atomicExch", "atomicCAS", "atomicAnd",
    "atomicOr", "atomicXor", "atomicInc", "atomicDec", "atomicAdd_block", "atomicAdd_system",
    # memory access
    "__ldg", "__ldcs", "__ldcg", "__ldca", "__ldlu", "__stcs", "__stcg", "__stwb",
    "__cvta_generic_to_shared", "memcpy_async", "cp_async", "cooperative_groups",
    "this_thread_block", "tiled_partition", "thread_block", "thread_block_tile", "grid_group",
    "this_grid",
    # math intrinsics
    "__expf", "__exp2f", "__logf", "__log2f", "__fdividef", "__frcp_rn", "__fsqrt_rn", "rsqrtf",
    "__powf", "__sinf", "__cosf", "__fmaf_rn", "__saturatef", "fmaxf", "fminf", "expf", "exp2f",
    "logf", "sqrtf", "tanhf", "fabsf", "erff", "log1pf", "__float_as_int", "__int_as_float",
    "__float_as_uint", "__uint_as_float",
    # floating-point and vector types
    "float", "double", "half", "__half", "__nv_bfloat16", "nv_bfloat16", "__nv_fp8_e4m3",
    "__nv_fp8_e5m2", "half_t", "bfloat16_t", "tfloat32_t", "float_e4m3_t", "float_e5m2_t",
    *VECTOR_TYPES,
    # conversions and half arithmetic
    "__float2half", "__float2half_rn", "__half2float", "__float2bfloat16", "__float2bfloat16_rn",
    "__bfloat162float", "__float22half2_rn", "__half22float2", "__float22bfloat162_rn",
    "__bfloat1622float2", "__floats2half2_rn", "__hadd", "__hmul", "__hfma", "__hmax", "__hmin",
    "__hadd2", "__hmul2", "__hfma2", "__hmax2", "__hneg",
    # tensor cores
    "nvcuda", "wmma", "fragment", "matrix_a", "matrix_b", "accumulator", "row_major", "col_major",
    "mma_sync", "load_matrix_sync", "store_matrix_sync", "fill_fragment", "mma", "__hmma",
    *PTX_TOKENS,
    # CUTLASS / CuTe
    "cute", "cutlass", "make_tensor", "local_tile", "local_partition", "make_layout",
    "make_shape", "make_stride", "Layout", "Shape", "Stride", "TiledMma", "TiledMMA", "TiledCopy",
    "MMA_Atom", "Copy_Atom", "make_tiled_mma", "make_tiled_copy", "partition_fragment_A",
    "partition_fragment_B", "partition_fragment_C", "partition_S", "partition_D",
    "<sm-atom>", "<sm-mma-atom>",
    # Triton
    "@triton.jit", "@triton.autotune", "@triton.heuristics", "triton", "tl", "triton.jit",
    "triton.Config", "triton.cdiv", "triton.next_power_of_2", "triton.autotune",
    "triton.heuristics", "triton.language", "tl.constexpr", "tl.program_id", "tl.num_programs",
    "tl.arange", "tl.load", "tl.store", "tl.dot", "tl.dot_scaled", "tl.sum", "tl.max", "tl.min",
    "tl.maximum", "tl.minimum", "tl.argmax", "tl.argmin", "tl.exp", "tl.exp2", "tl.log",
    "tl.log2", "tl.sqrt", "tl.rsqrt", "tl.sigmoid", "tl.where", "tl.zeros", "tl.zeros_like",
    "tl.full", "tl.make_block_ptr", "tl.advance", "tl.make_tensor_descriptor", "tl.static_range",
    "tl.range", "tl.multiple_of", "tl.max_contiguous", "tl.atomic_add", "tl.atomic_max",
    "tl.atomic_min", "tl.atomic_cas", "tl.atomic_xchg", "tl.debug_barrier", "tl.cumsum",
    "tl.reshape", "tl.trans", "tl.permute", "tl.broadcast_to", "tl.expand_dims", "tl.view",
    "tl.abs", "tl.cdiv", "tl.fma", "tl.erf", "tl.cos", "tl.sin", "tl.static_assert",
    "tl.device_print", "tl.static_print", "tl.join", "tl.split", "tl.cast", "tl.associative_scan",
    "tl.reduce", "tl.softmax", "tl.umulhi", "tl.rand", "tl.randn", "tl.int1", "tl.int8",
    "tl.int16", "tl.int32", "tl.int64", "tl.uint8", "tl.uint32", "tl.uint64", "tl.float16",
    "tl.bfloat16", "tl.float32", "tl.float64", "tl.float8e4nv", "tl.float8e5", "tl.float8e4b15",
    "tl.float8e4b8", "tl.float8e5b16", "tl.pointer_type", "tl.tensor", "tl.math", "libdevice",
    # torch (Triton launchers)
    "torch", "torch.float16", "torch.half", "torch.bfloat16", "torch.float32", "torch.float",
    "torch.float64", "torch.double", "torch.float8_e4m3fn", "torch.float8_e5m2",
    "torch.float8_e4m3fnuz", "torch.float8_e5m2fnuz", "torch.int8", "torch.int32",
    "torch.int64", "torch.empty", "torch.empty_like", "torch.zeros", "torch.Tensor",
    # launch / tuning knobs and load-store keywords
    "num_warps", "num_stages", "num_ctas", "maxnreg", "mask", "other", "eviction_policy",
    "cache_modifier", "boundary_check", "padding_option", "allow_tf32", "input_precision",
    "out_dtype", "loop_unroll_factor", "warp_specialize", "grid", "meta", "key", "configs",
    "do_not_specialize",
    # tile-size names
    *TILE_TOKENS,
)


class Lexeme(NamedTuple):
    """One normalised token: ``kind`` in {name, keyword, op, num, str, pp, cat}, its text, its id.

    ``value`` is the parsed number for ``num`` lexemes (int or float), else ``None``.
    """

    kind: str
    text: str
    id: int
    value: int | float | None = None


def _table(names, start: int, stop: int, what: str) -> dict[str, int]:
    table: dict[str, int] = {}
    for name in names:
        if name not in table:
            table[name] = start + len(table)
    if start + len(table) > stop:
        raise AssertionError(f"kernel vocabulary: {what} table overflows its range")
    return table


CATEGORY_ID = _table(CATEGORIES, *RANGES["category"], "category")
OPERATOR_ID = _table(OPERATORS, *RANGES["operator"], "operator")
KEYWORD_ID = _table(KEYWORDS, *RANGES["keyword"], "keyword")
KERNEL_ID = _table(KERNEL_TOKENS, *RANGES["kernel"], "kernel")

_INT_BASE = RANGES["number"][0]            # int:0 .. int:63 -> [768, 833)
_FLOAT_ZERO = _INT_BASE + 65               # float:0
_FLOAT_BASE = _FLOAT_ZERO + 1 + 30         # float:e for e in [-30, 30] -> _FLOAT_BASE + e
_FLOAT_NONFINITE = _FLOAT_BASE + 31
assert _FLOAT_NONFINITE < RANGES["number"][1]

VOCAB = Vocabulary(size=VOCAB_SIZE, pad_id=PAD, version=VOCAB_VERSION, ranges=dict(RANGES))

_MAX_OP_LEN = max(len(op) for op in (*OPERATORS, "<<<", ">>>"))


# -- small pure helpers -------------------------------------------------------------------------
def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bit: h = 2166136261; for each byte: h = ((h ^ b) * 16777619) mod 2**32."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


@functools.lru_cache(maxsize=1 << 16)
def identifier_id(name: str) -> int:
    """Identifier bucket: 1024 + FNV-1a-32(utf-8 name) mod 1024 (stable across processes)."""
    return RANGES["identifier"][0] + fnv1a_32(name.encode("utf-8")) % IDENT_BUCKETS


_TILE_REST = re.compile(r"^(?:[MNKDHXYZ]\d*|DMODEL|HEADDIM|HEAD|ROWS?|COLS?|R|C|DIM|)$")


@functools.lru_cache(maxsize=1 << 14)
def tile_axis(name: str) -> str | None:
    """Classify a tile/block-size name: ``"M"``, ``"N"``, ``"K"``, ``"other"`` or ``None``.

    Recognised: ``BLOCK``/``TILE``/``BLK`` optionally followed by ``SIZE`` and an axis or a known
    suffix (``BLOCK_M``, ``BLOCK_SIZE_N``, ``TILE_K``, ``BLOCK_DMODEL``, ``BLOCK_SIZE``,
    ``blockSize``), a leading ``k`` constant prefix (``kBlockM``), and ``BM``/``BN``/``BK``/
    ``TM``/``TN``/``TK``. ``blockIdx``/``blockDim`` and the bare variable names ``block``/``tile``
    are not tile names.
    """
    if name in ("blockIdx", "blockDim", "blockId", "block", "Block", "blk", "tile", "Tile"):
        return None  # builtins and plain lower-case variable names, not tile-size constants
    stripped = name[1:] if len(name) > 2 and name[0] == "k" and (name[1].isupper() or name[1] == "_") else name
    upper = stripped.upper().replace("_", "")
    if upper in ("BM", "BN", "BK", "TM", "TN", "TK"):
        return upper[1]
    for prefix in ("BLOCK", "TILE", "BLK"):
        if upper.startswith(prefix):
            rest = upper[len(prefix):]
            if rest.startswith("SIZE"):
                rest = rest[4:]
            if not _TILE_REST.match(rest):
                return None
            if rest[:1] in ("M", "N", "K") and rest[1:].isdigit() | (len(rest) == 1):
                return rest[0]
            return "other"
    return None


def _tile_token(axis: str) -> int:
    return KERNEL_ID["<tile>" if axis == "other" else f"<tile:{axis}>"]


_SM_ATOM = re.compile(r"^SM\d{2,3}_")


@functools.lru_cache(maxsize=1 << 16)
def _word_id(word: str, category: str) -> tuple[str, int]:
    """(kind, id) of a single word (no dots): kernel table, keyword table, tile name, SM atom,
    else its identifier hash (``Keyword.*`` words unknown to the tables become ``keyword``)."""
    if word in KERNEL_ID:
        return "name", KERNEL_ID[word]
    if word in KEYWORD_ID:
        return "keyword", KEYWORD_ID[word]
    if category == "keyword":
        return "keyword", CATEGORY_ID["keyword"]
    axis = tile_axis(word)
    if axis is not None:
        return "name", _tile_token(axis)
    if _SM_ATOM.match(word):
        return "name", KERNEL_ID["<sm-mma-atom>" if "MMA" in word.upper() else "<sm-atom>"]
    return "name", identifier_id(word)


def number_lexeme(text: str, is_float: bool) -> Lexeme:
    """Parse a C or Python numeric literal and bucket it (see module docstring)."""
    raw = text.replace("_", "").replace("'", "")
    value: int | float | None
    try:
        if is_float:
            low = raw.lower()
            if low.startswith("0x"):
                value = float.fromhex(raw.rstrip("fFlL"))
            else:
                value = float(raw.rstrip("fFlLjJ") if not low.endswith("e") else raw)
        else:
            digits = raw.rstrip("uUlLjJ")
            if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
                value = int(digits, 8)
            else:
                value = int(digits, 0)
    except (ValueError, OverflowError):
        return Lexeme("num", text, CATEGORY_ID["number"], None)
    if isinstance(value, int):
        bucket = 0 if value == 0 else min(value.bit_length(), 63)
        return Lexeme("num", text, _INT_BASE + bucket, value)
    if not math.isfinite(value):
        return Lexeme("num", text, _FLOAT_NONFINITE, value)
    if value == 0.0:
        return Lexeme("num", text, _FLOAT_ZERO, value)
    exponent = max(-30, min(30, math.floor(math.log2(abs(value)))))
    return Lexeme("num", text, _FLOAT_BASE + exponent, value)


def string_lexeme(content: str, kind_hint: str = "string") -> Lexeme:
    """One token for a whole string literal (see module docstring)."""
    if kind_hint == "docstring":
        return Lexeme("str", content, CATEGORY_ID["docstring"])
    word = content.strip()
    if word and len(word) <= 48 and word.isidentifier():
        tid = _word_id(word, "name")[1]
        if tid in _KERNEL_RANGE:
            return Lexeme("str", content, tid)
    if "." in content:
        token = ptx_token(content)
        if token is not None:
            return Lexeme("str", content, KERNEL_ID[token])
    return Lexeme("str", content, CATEGORY_ID[kind_hint])


_KERNEL_RANGE = range(*RANGES["kernel"])


_OP_LEXEME = {text: Lexeme("op", text, tid)
              for text, tid in {**OPERATOR_ID, "<<<": KERNEL_ID["<<<"], ">>>": KERNEL_ID[">>>"]}.items()}


def split_operators(run: str, state: list[int]) -> list[Lexeme]:
    """Split a run of adjacent operator characters by longest match; ``state[0]`` counts open
    ``<<<`` launches so that ``>>>`` is only merged when it closes one."""
    out: list[Lexeme] = []
    i = 0
    while i < len(run):
        for width in range(min(_MAX_OP_LEN, len(run) - i), 0, -1):
            piece = run[i:i + width]
            if piece == ">>>" and state[0] <= 0:
                continue
            lexeme = _OP_LEXEME.get(piece)
            if lexeme is not None:
                if piece == "<<<":
                    state[0] += 1
                elif piece == ">>>":
                    state[0] -= 1
                out.append(lexeme)
                i += width
                break
        else:
            out.append(Lexeme("op", run[i], CATEGORY_ID["operator"]))
            i += 1
    return out


@functools.lru_cache(maxsize=1 << 16)
def _word_lexeme(word: str, category: str) -> Lexeme:
    kind, tid = _word_id(word, category)
    return Lexeme(kind, word, tid)


def _chain_lexemes(parts: list[str], category: str) -> list[Lexeme]:
    """Lexemes of a dotted chain ``a.b.c`` by longest match against the kernel table."""
    if len(parts) == 1:
        return [_word_lexeme(parts[0], category)]
    out: list[Lexeme] = []
    i = 0
    n = len(parts)
    while i < n:
        if i:
            out.append(_OP_LEXEME["."])
        for j in range(n, i + 1, -1):
            dotted = ".".join(parts[i:j])
            tid = KERNEL_ID.get(dotted)
            if tid is not None:
                out.append(Lexeme("name", dotted, tid))
                i = j
                break
        else:
            out.append(_word_lexeme(parts[i], category if i == 0 else "name"))
            i += 1
    return out


# -- the lexer ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _pygments_lexer(lang: str):
    from pygments.lexers import CudaLexer, PythonLexer  # imported lazily: plugin import stays light

    return CudaLexer(stripnl=False) if lang == "cuda" else PythonLexer(stripnl=False)


# token-class codes, computed once per Pygments token type
(_WS, _PREPROC, _PREPROC_FILE, _COMMENT, _COMMENT_LINE, _STRING, _DOC, _CHAR, _AFFIX, _INT, _FLOAT,
 _OPWORD, _OP, _NAME, _KEYWORD, _KEYWORD_TYPE, _DECORATOR, _ERROR, _OTHER) = range(19)
_CLASS_CACHE: dict = {}


def _class_of(ttype) -> int:
    code = _CLASS_CACHE.get(ttype)
    if code is not None:
        return code
    from pygments import token as T

    checks = (
        (T.Comment.PreprocFile, _PREPROC_FILE), (T.Comment.Preproc, _PREPROC),
        (T.Comment.Single, _COMMENT_LINE), (T.Comment.Hashbang, _COMMENT_LINE), (T.Comment, _COMMENT),
        (T.String.Doc, _DOC), (T.String.Char, _CHAR), (T.String.Affix, _AFFIX), (T.String, _STRING),
        (T.Number.Float, _FLOAT), (T.Number, _INT), (T.Operator.Word, _OPWORD), (T.Operator, _OP),
        (T.Punctuation, _OP), (T.Name.Decorator, _DECORATOR), (T.Name, _NAME),
        (T.Keyword.Type, _KEYWORD_TYPE), (T.Keyword, _KEYWORD), (T.Error, _ERROR),
        (T.Text, _WS), (T.Whitespace, _WS),
    )
    code = next((c for parent, c in checks if ttype in parent), _OTHER)
    _CLASS_CACHE[ttype] = code
    return code


def detect_language(path: str = "", text: str = "", declared: str | None = None) -> str:
    """``"cuda"`` or ``"triton"``: the row's declared ``lang`` wins, then the file extension
    (``.py`` -> Triton), then the content (``@triton.jit`` -> Triton), else CUDA."""
    if declared:
        low = str(declared).strip().lower()
        if low in ("triton", "python"):
            return "triton"
        if low in ("cuda", "c++", "cpp", "c"):
            return "cuda"
    low_path = (path or "").lower()
    if low_path.endswith((".py", ".pyi")):
        return "triton"
    if low_path.endswith((".cu", ".cuh", ".h", ".hpp", ".hxx", ".cpp", ".cc", ".cxx", ".c", ".inl")):
        return "cuda"
    if "@triton.jit" in text or "import triton" in text:
        return "triton"
    return "cuda"


def lex(text: str, lang: str) -> tuple[Lexeme, ...]:
    """All lexemes of ``text`` lexed as ``lang`` (``"cuda"`` or ``"triton"``); no BOS/EOS."""
    if lang not in LANG_ID:
        from wmkit.errors import DataError

        raise DataError(f"kernel tokenizer: unknown language {lang!r}; use 'cuda' or 'triton'")
    return _lex_cached(lang, text)


@functools.lru_cache(maxsize=16)
def _lex_cached(lang: str, text: str) -> tuple[Lexeme, ...]:
    # consecutive commits of one file share a side (new of one == old of the next): cache a few
    return tuple(_lex(text, lang))


def _lex(text: str, lang: str) -> list[Lexeme]:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    cached = _CLASS_CACHE.get
    raw = [(pos, cached(ttype) if ttype in _CLASS_CACHE else _class_of(ttype), value)
           for pos, ttype, value in _pygments_lexer(lang).get_tokens_unprocessed(text)]
    out: list[Lexeme] = []
    launch_state = [0]
    n = len(raw)
    i = 0
    while i < n:
        pos, code, value = raw[i]
        if code in (_WS, _COMMENT, _COMMENT_LINE, _PREPROC_FILE) or not value.strip():
            i += 1
            continue
        if code == _PREPROC:
            i = _directive_at(raw, i, lang, out)
            continue
        if code in (_STRING, _DOC, _CHAR, _AFFIX):
            # merge the literal's pieces (quotes, escapes, interpolation) into one token
            kind_hint = "docstring" if code == _DOC else ("char" if code == _CHAR else "string")
            pieces = []
            while i < n and raw[i][1] in (_STRING, _DOC, _CHAR, _AFFIX):
                if raw[i][1] != _AFFIX:
                    pieces.append(raw[i][2])
                i += 1
            out.append(string_lexeme("".join(pieces).strip("'\""), kind_hint))
            continue
        if code == _INT or code == _FLOAT:
            out.append(number_lexeme(value, code == _FLOAT))
            i += 1
            continue
        if code == _OPWORD:
            out.append(Lexeme("keyword", value, _word_id(value, "keyword")[1]))
            i += 1
            continue
        if code == _OP or (code == _NAME and value == "."):
            run = [value.strip()]
            end = pos + len(value)
            i += 1
            while i < n:
                p2, c2, v2 = raw[i]
                if p2 == end and c2 == _OP:
                    run.append(v2)
                    end = p2 + len(v2)
                    i += 1
                else:
                    break
            if len(run) == 1 and run[0] in _OP_LEXEME and run[0] != ">>>":
                out.append(_OP_LEXEME[run[0]])
            else:
                out.extend(split_operators("".join(run), launch_state))
            continue
        if code in (_NAME, _KEYWORD, _KEYWORD_TYPE, _DECORATOR):
            category = "keyword" if code == _KEYWORD else "name"
            parts = [value]
            end = pos + len(value)
            i += 1
            # extend a dotted chain: NAME '.' NAME '.' NAME (adjacent, no whitespace)
            while i + 1 < n:
                p_dot, _, v_dot = raw[i]
                p_nm, c_nm, v_nm = raw[i + 1]
                if v_dot == "." and p_dot == end and p_nm == end + 1 and c_nm == _NAME and v_nm != ".":
                    parts.append(v_nm)
                    end = p_nm + len(v_nm)
                    i += 2
                else:
                    break
            if code == _DECORATOR or parts[0].startswith("@"):
                first = parts[0].lstrip("@")
                full = "@" + ".".join([first, *parts[1:]])
                tid = KERNEL_ID.get(full)
                if tid is not None:
                    out.append(Lexeme("name", full, tid))
                    continue
                out.append(Lexeme("cat", "@", CATEGORY_ID["decorator"]))
                parts = [first, *parts[1:]] if first else (parts[1:] or ["_"])
            out.extend(_chain_lexemes(parts, category))
            continue
        out.append(Lexeme("cat", value, CATEGORY_ID["error" if code == _ERROR else "other"]))
        i += 1
    return out


def _directive_at(raw, i: int, lang: str, out: list[Lexeme]) -> int:
    """Consume the directive starting at ``raw[i]`` ('#' and its Comment.Preproc pieces up to an
    unescaped newline), append its lexemes to ``out``, return the index after it."""
    n = len(raw)
    body: list[str] = []
    header_files: list[str] = []
    if raw[i][2].strip() != "#":
        body.append(raw[i][2])
    i += 1
    while i < n:
        _, code, val = raw[i]
        if code == _PREPROC_FILE:
            header_files.append(val.strip())
            i += 1
            continue
        if code == _PREPROC:
            if "\n" in val and not "".join(body).rstrip(" \t").endswith("\\"):
                body.append(val.split("\n", 1)[0])
                i += 1
                break
            body.append(val)
            i += 1
            continue
        if code == _WS:
            i += 1
            if "\n" in val and not "".join(body).rstrip(" \t").endswith("\\"):
                break
            body.append(" ")
            continue
        if code == _COMMENT_LINE:
            i += 1
            break  # a // comment ends the directive's line
        if code == _COMMENT:
            i += 1
            continue
        break
    text = "".join(body).replace("\\\n", " ").replace("\\", " ")
    out.extend(_directive(text, header_files, lang))
    return i


_DIRECTIVES = {"include": "include", "define": "define", "if": "conditional", "ifdef": "conditional",
               "ifndef": "conditional", "elif": "conditional", "elifdef": "conditional",
               "elifndef": "conditional", "else": "else", "endif": "endif", "undef": "undef",
               "pragma": "pragma"}


def _directive(body: str, header_files: list[str], lang: str) -> list[Lexeme]:
    """Lexemes of one preprocessor directive (``body`` is the text after ``#``)."""
    body = body.strip()
    word, _, rest = body.partition(" ")
    if "(" in word:  # e.g. "if(" or "pragma(" without a space
        word, paren, tail = word.partition("(")
        rest = paren + tail + " " + rest
    word = word.strip()
    rest = rest.strip()
    if word == "pragma" and rest.startswith("unroll"):
        out = [Lexeme("pp", "#pragma unroll", KERNEL_ID["#pragma unroll"])]
        factor = rest[len("unroll"):].strip()
        if factor and lang == "cuda":
            out.extend(_lex(factor, "cuda"))  # the factor: a number, a constant, an expression
        return out
    category = _DIRECTIVES.get(word, "preproc")
    out = [Lexeme("pp", f"#{word}", CATEGORY_ID[category])]
    if category == "include":
        for name in header_files or ([rest.strip("<>\"")] if rest else []):
            out.append(Lexeme("name", name, identifier_id(name.strip())))
        return out
    if category in ("define", "conditional", "undef") and rest:
        out.extend(_lex(rest, "cuda") if lang == "cuda" else [])
    return out


# -- public entry points ------------------------------------------------------------------------
def ids_of(lexemes, lang: str) -> list[int]:
    """``[BOS, LANG, lexeme ids..., EOS]``."""
    return [BOS, LANG_ID[lang], *(lx.id for lx in lexemes), EOS]


def tokenize(text: str, lang: str = "cuda") -> list[int]:
    """Token ids of one kernel source, untruncated: ``[BOS, LANG, ..., EOS]``."""
    return ids_of(lex(text, lang), lang)


def describe(token_id: int) -> str:
    """Human-readable name of an id (for docs, debugging and tests)."""
    for table in (KERNEL_ID, KEYWORD_ID, OPERATOR_ID):
        for text, tid in table.items():
            if tid == token_id:
                return text
    for text, tid in CATEGORY_ID.items():
        if tid == token_id:
            return f"<{text}>"
    specials = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>", UNK: "<unk>"}
    if token_id in specials:
        return specials[token_id]
    for lang, tid in LANG_ID.items():
        if tid == token_id:
            return f"<lang:{lang}>"
    lo, hi = RANGES["number"]
    if lo <= token_id < hi:
        if token_id < _FLOAT_ZERO:
            return f"<int:{token_id - _INT_BASE}>"
        if token_id == _FLOAT_ZERO:
            return "<float:0>"
        if token_id == _FLOAT_NONFINITE:
            return "<float:nonfinite>"
        return f"<float:2^{token_id - _FLOAT_BASE}>"
    lo, hi = RANGES["identifier"]
    if lo <= token_id < hi:
        return f"<id:{token_id - lo}>"
    return "<reserved>"
