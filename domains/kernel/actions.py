"""The kernel domain's 12-D edit action, computed from the lexemes of both sides of a transition.

Described in full in docs/kernel.md#action-12-d.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .tokenizer import (
    CUDA_DTYPE_PRECISION, KERNEL_ID, TILE_TOKENS, TRITON_DTYPE_PRECISION, VECTOR_TYPES, Lexeme,
)

ACTION_NAMES = (
    "tile_log2_ratio", "launch_config", "shared_mem", "sync", "vector_width", "unroll",
    "dtype_precision", "tensor_core", "kernels_added", "kernels_removed", "size_ratio", "first_change",
)
ACTION_DIM = len(ACTION_NAMES)
#: per signed dimension (0-7): the delta that saturates the component at 0 or 1
SIGNED_SCALE = (4.0, 4.0, 2.0, 8.0, 4.0, 2.0, 2.0, 4.0)
KERNEL_CAP = 5
SIZE_CAP = 3.0

EDIT_CLASSES = (
    "tile", "launch", "shared_mem", "sync", "vector", "unroll", "dtype", "tensor_core",
    "kernel_added", "kernel_removed", "other",
)


def _ids(*names: str) -> frozenset[int]:
    return frozenset(KERNEL_ID[n] for n in names)


SHARED_IDS = _ids("__shared__", "ptx:cp.async", "__pipeline_memcpy_async", "memcpy_async", "cp_async",
                  "cudaFuncAttributeMaxDynamicSharedMemorySize", "tl.make_block_ptr",
                  "tl.make_tensor_descriptor")
SYNC_IDS = _ids("__syncthreads", "__syncthreads_count", "__syncthreads_and", "__syncthreads_or",
                "__syncwarp", "__threadfence", "__threadfence_block", "__threadfence_system",
                "__pipeline_wait_prior", "cp_async_wait", "arrive_and_wait", "ptx:cp.async.wait",
                "ptx:bar", "ptx:fence", "tl.debug_barrier")
VECTOR_IDS = _ids(*VECTOR_TYPES, "tl.multiple_of", "tl.max_contiguous")
UNROLL_IDS = _ids("#pragma unroll", "tl.static_range", "loop_unroll_factor")
TENSOR_IDS = _ids("wmma", "mma_sync", "load_matrix_sync", "store_matrix_sync", "fill_fragment", "mma",
                  "__hmma", "ptx:mma", "ptx:wgmma", "ptx:ldmatrix", "ptx:stmatrix", "tl.dot",
                  "tl.dot_scaled", "TiledMma", "TiledMMA", "MMA_Atom", "make_tiled_mma", "<sm-mma-atom>")
TILE_IDS = _ids(*TILE_TOKENS)
COUNTED = (("shared", SHARED_IDS), ("sync", SYNC_IDS), ("vector", VECTOR_IDS), ("unroll", UNROLL_IDS),
           ("tensor", TENSOR_IDS))

LAUNCH_KNOBS = frozenset({"num_warps", "num_stages", "num_ctas", "maxnreg"})
_LAUNCH_NAME = re.compile(
    r"(?i)^(?:k_?)?(?:n_?|num_?|max_?)?(?:threads|warps)(?:_?per_?(?:block|cta|sm))?$"
    r"|^(?:k_?)?block_?threads$|^(?:k_?)?threads_?per_?block$")
_VEC_NAME = re.compile(r"(?i)^(?:k_?|num_?|n_?)?vec(?:_?(?:size|len|width|t|type|bytes|elems|n))?\d*$")
_VALUE_SKIP = frozenset({"=", ":", "tl.constexpr", "constexpr", "int", "const", "static", "unsigned",
                         "size_t", "int32_t", "int64_t", "uint32_t", "long", "auto", "inline"})
_PAREN_SKIP = frozenset({"__launch_bounds__", "__cluster_dims__", "__maxnreg__", "alignas", "__align__"})


@dataclass
class KernelFacts:
    """What the action needs from one side of a transition."""

    tiles: dict[str, list[int]] = field(default_factory=dict)
    launch_params: dict[tuple, list[float]] = field(default_factory=dict)
    launch_items: Counter = field(default_factory=Counter)
    counts: dict[str, int] = field(default_factory=dict)
    dtype_log2_precision: float | None = None
    kernels: frozenset[str] = frozenset()
    n_tokens: int = 0


# -- extraction ---------------------------------------------------------------------------------
def _bound_value(lexemes: list[Lexeme], i: int) -> int | float | None:
    """The number bound to the name at ``i``: ``NAME = 128``, ``NAME: tl.constexpr = 128``,
    ``'NAME': 128``, ``#define NAME 128``, ``template <int NAME = 128>``; else ``None``."""
    after_define = i > 0 and lexemes[i - 1].kind == "pp" and lexemes[i - 1].text == "#define"
    seen_binder = after_define
    for j in range(i + 1, min(i + 7, len(lexemes))):
        lx = lexemes[j]
        if lx.kind == "num":
            return lx.value if (seen_binder and lx.value is not None) else None
        if lx.text in _VALUE_SKIP:
            seen_binder = seen_binder or lx.text in ("=", ":")
            continue
        return None
    return None


def _paren_args(lexemes: list[Lexeme], start: int, open_text: str, close_text: str) -> tuple[list[list[Lexeme]], int]:
    """Top-level comma-separated arguments between ``lexemes[start]`` (the opener) and its closer."""
    args: list[list[Lexeme]] = [[]]
    depth = 0
    j = start + 1
    n = len(lexemes)
    while j < n and j < start + 400:
        text = lexemes[j].text if lexemes[j].kind == "op" else None
        if text in ("(", "[", "{") or (text == open_text and open_text not in ("(",)):
            depth += 1
        elif text in (")", "]", "}") or text == close_text:
            if depth == 0 and text == close_text:
                return [a for a in args if a], j
            depth -= 1
            if depth < 0:
                break
        elif text == "," and depth == 0:
            args.append([])
            j += 1
            continue
        args[-1].append(lexemes[j])
        j += 1
    return [a for a in args if a], j


def _numeric_arg(arg: list[Lexeme]) -> float | None:
    if len(arg) == 1 and arg[0].kind == "num" and isinstance(arg[0].value, (int, float)):
        return float(arg[0].value)
    return None


def kernel_facts(lexemes, lang: str) -> KernelFacts:
    """Extract tile constants, launch parameters, marker counts, dtype mix and kernel names."""
    lexemes = list(lexemes)
    facts = KernelFacts(n_tokens=len(lexemes) + 3)
    counts = dict.fromkeys((name for name, _ in COUNTED), 0)
    dtype_table = TRITON_DTYPE_PRECISION if lang == "triton" else CUDA_DTYPE_PRECISION
    dtype_logs: list[float] = []
    kernels: set[str] = set()
    launch_seen: Counter = Counter()
    global_id = KERNEL_ID["__global__"]
    jit_id = KERNEL_ID["@triton.jit"]
    launch_open = KERNEL_ID["<<<"]
    n = len(lexemes)
    for i, lx in enumerate(lexemes):
        tid = lx.id
        for name, ids in COUNTED:
            if tid in ids:
                counts[name] += 1
        kind = lx.kind
        if kind == "name" and _VEC_NAME.match(lx.text):
            counts["vector"] += 1
        if kind in ("name", "keyword"):
            bits = dtype_table.get(lx.text)
            if bits:
                dtype_logs.append(math.log2(bits))
        if tid in TILE_IDS:
            value = _bound_value(lexemes, i)
            if isinstance(value, int):
                facts.tiles.setdefault(lx.text, []).append(value)
            continue
        if kind in ("name", "str") and (lx.text in LAUNCH_KNOBS or _LAUNCH_NAME.match(lx.text)):
            value = _bound_value(lexemes, i)
            if value is not None:
                facts.launch_params.setdefault((lx.text,), []).append(float(value))
                facts.launch_items[f"{lx.text}={value}"] += 1
            elif lx.text in LAUNCH_KNOBS:
                facts.launch_items[lx.text] += 1
            continue
        if tid == launch_open:
            callee = lexemes[i - 1].text if i else "?"
            occurrence = launch_seen[callee]
            launch_seen[callee] += 1
            args, _ = _paren_args(lexemes, i, "<<<", ">>>")
            facts.launch_items["<<<" + " , ".join(" ".join(a.text for a in arg) for arg in args) + ">>>"] += 1
            for k, arg in enumerate(args):
                value = _numeric_arg(arg)
                if value is not None:
                    facts.launch_params.setdefault(("<<<", callee, occurrence, k), []).append(value)
            continue
        if lx.text == "__launch_bounds__" and i + 1 < n and lexemes[i + 1].text == "(":
            args, _ = _paren_args(lexemes, i + 1, "(", ")")
            facts.launch_items["__launch_bounds__(" + " , ".join(" ".join(a.text for a in arg) for arg in args) + ")"] += 1
            for k, arg in enumerate(args):
                value = _numeric_arg(arg)
                if value is not None:
                    facts.launch_params.setdefault(("__launch_bounds__", k), []).append(value)
            continue
        if lx.text == "dim3" and i + 2 < n and lexemes[i + 1].kind == "name":
            var = lexemes[i + 1].text
            j = i + 2
            if lexemes[j].text == "=" and j + 2 < n and lexemes[j + 1].text == "dim3":
                j += 2
            if j < n and lexemes[j].text in ("(", "{"):
                args, _ = _paren_args(lexemes, j, lexemes[j].text, ")" if lexemes[j].text == "(" else "}")
                facts.launch_items["dim3 " + var + "(" + " , ".join(" ".join(a.text for a in arg) for arg in args) + ")"] += 1
                for k, arg in enumerate(args):
                    value = _numeric_arg(arg)
                    if value is not None:
                        facts.launch_params.setdefault(("dim3", var, k), []).append(value)
            continue
        if tid == global_id:
            name = _cuda_kernel_name(lexemes, i)
            if name:
                kernels.add(name)
        elif tid == jit_id:
            for j in range(i + 1, min(i + 300, n)):
                if lexemes[j].text == "def" and lexemes[j].kind == "keyword":
                    if j + 1 < n and lexemes[j + 1].kind == "name":
                        kernels.add(lexemes[j + 1].text)
                    break
    facts.counts = counts
    facts.dtype_log2_precision = sum(dtype_logs) / len(dtype_logs) if dtype_logs else None
    facts.kernels = frozenset(kernels)
    return facts


def _cuda_kernel_name(lexemes: list[Lexeme], i: int) -> str | None:
    """The name of the ``__global__`` function declared at ``lexemes[i]``."""
    j = i + 1
    n = len(lexemes)
    while j < n and j < i + 60:
        lx = lexemes[j]
        if lx.text in (";", "{", "}"):
            return None
        if lx.text in _PAREN_SKIP and j + 1 < n and lexemes[j + 1].text == "(":
            _, j = _paren_args(lexemes, j + 1, "(", ")")
            j += 1
            continue
        if lx.kind == "name" and j + 1 < n and lexemes[j + 1].text == "(":
            return lx.text
        j += 1
    return None


# -- the vector ---------------------------------------------------------------------------------
def _signed(delta: float, scale: float) -> float:
    return 0.5 + 0.5 * max(-1.0, min(1.0, delta / scale))


def _mean_log2(values) -> float | None:
    logs = [math.log2(v) for v in values if v > 0]
    return sum(logs) / len(logs) if logs and len(logs) == len(values) else None


def _is_pow2(v: int) -> bool:
    return v > 0 and (v & (v - 1)) == 0


def tile_delta(old: KernelFacts, new: KernelFacts) -> float:
    """Dim 0's delta: mean over changed power-of-two tile constants of the mean-log2 difference."""
    diffs = []
    for name in old.tiles.keys() & new.tiles.keys():
        a, b = old.tiles[name], new.tiles[name]
        if sorted(a) == sorted(b) or not all(_is_pow2(v) for v in (*a, *b)):
            continue
        diffs.append(_mean_log2(b) - _mean_log2(a))
    return sum(diffs) / len(diffs) if diffs else 0.0


def launch_delta(old: KernelFacts, new: KernelFacts) -> float:
    """Dim 1's delta (see module docstring)."""
    diffs = []
    for key in old.launch_params.keys() & new.launch_params.keys():
        a, b = old.launch_params[key], new.launch_params[key]
        if sorted(a) == sorted(b):
            continue
        la, lb = _mean_log2(a), _mean_log2(b)
        if la is not None and lb is not None and la != lb:
            diffs.append(lb - la)
    if diffs:
        return sum(diffs) / len(diffs)
    if old.launch_items != new.launch_items:
        return 0.5 if sum(new.launch_items.values()) >= sum(old.launch_items.values()) else -0.5
    return 0.0


def first_change_location(old_text: str, new_text: str) -> float:
    """Index of the first differing line / the larger line count (1.0 for identical texts)."""
    a = old_text.splitlines()
    b = new_text.splitlines()
    longest = max(len(a), len(b), 1)
    k = 0
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return k / longest
    return min(len(a), len(b)) / longest if len(a) != len(b) else 1.0


def action_vector(old: KernelFacts, new: KernelFacts, old_text: str, new_text: str) -> np.ndarray:
    """The 12-D action (float32, every component in [0, 1]); see the module docstring."""
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    a[0] = _signed(tile_delta(old, new), SIGNED_SCALE[0])
    a[1] = _signed(launch_delta(old, new), SIGNED_SCALE[1])
    for dim, name in ((2, "shared"), (3, "sync"), (4, "vector"), (5, "unroll")):
        a[dim] = _signed(new.counts[name] - old.counts[name], SIGNED_SCALE[dim])
    dtype_delta = 0.0
    if old.dtype_log2_precision is not None and new.dtype_log2_precision is not None:
        dtype_delta = new.dtype_log2_precision - old.dtype_log2_precision
    a[6] = _signed(dtype_delta, SIGNED_SCALE[6])
    a[7] = _signed(new.counts["tensor"] - old.counts["tensor"], SIGNED_SCALE[7])
    a[8] = min(len(new.kernels - old.kernels), KERNEL_CAP) / KERNEL_CAP
    a[9] = min(len(old.kernels - new.kernels), KERNEL_CAP) / KERNEL_CAP
    a[10] = min(new.n_tokens / max(old.n_tokens, 1), SIZE_CAP) / SIZE_CAP
    a[11] = first_change_location(old_text, new_text)
    return a


def change_indicators(action: np.ndarray) -> np.ndarray:
    """Per dims 0-9: ``|a - 0.5| * 2`` for the signed dims 0-7, ``a`` for the counts 8-9."""
    action = np.asarray(action, dtype=np.float64)
    return np.concatenate([np.abs(action[:8] - 0.5) * 2.0, action[8:10]])


def edit_class(action: np.ndarray) -> int:
    """Index into :data:`EDIT_CLASSES`: argmax of :func:`change_indicators`, or "other"."""
    ind = change_indicators(action)
    best = int(np.argmax(ind))
    return best if ind[best] > 1e-6 else EDIT_CLASSES.index("other")
