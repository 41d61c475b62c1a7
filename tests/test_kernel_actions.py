"""Kernel action (12-D): each component on crafted CUDA and Triton edits with known answers."""

import math

import numpy as np
import pytest

from wmkit_kernel.actions import (ACTION_DIM, ACTION_NAMES, EDIT_CLASSES, action_vector, change_indicators,
                                  edit_class, kernel_facts)
from wmkit_kernel.tokenizer import lex

DIM = {name: i for i, name in enumerate(ACTION_NAMES)}

BASE_CUDA = """#define BLOCK_SIZE 128
__global__ void add_kernel(const float* x, float* y, int n) {
    int i = blockIdx.x * BLOCK_SIZE + threadIdx.x;
    float acc = 0.f;
    for (int k = 0; k < 4; ++k) {
        acc += x[i + k];
    }
    y[i] = acc;
}
void launch(const float* x, float* y, int n) {
    add_kernel<<<(n + BLOCK_SIZE - 1) / BLOCK_SIZE, BLOCK_SIZE>>>(x, y, n);
}
"""

BASE_TRITON = """import triton
import triton.language as tl

@triton.jit
def scale_kernel(x_ptr, out_ptr, n, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offs, mask=offs < n).to(tl.float32)
    tl.store(out_ptr + offs, (x * 2).to(tl.float32), mask=offs < n)

def scale(x, out, n):
    scale_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK_SIZE=1024, num_warps=4, num_stages=2)
"""


def act(old: str, new: str, lang: str = "cuda") -> np.ndarray:
    lo, ln = lex(old, lang), lex(new, lang)
    return action_vector(kernel_facts(lo, lang), kernel_facts(ln, lang), old, new)


def signed(delta: float, scale: float) -> float:
    """Independent statement of the signed mapping: 0.5 + 0.5 * clip(delta / scale, -1, 1)."""
    return 0.5 + 0.5 * max(-1.0, min(1.0, delta / scale))


def untouched(a: np.ndarray, *changed: str) -> None:
    """Every signed dim not named is neutral (0.5); kernel counts are 0 unless named."""
    for name in ACTION_NAMES[:8]:
        if name not in changed:
            assert a[DIM[name]] == pytest.approx(0.5), name
    for name in ("kernels_added", "kernels_removed"):
        if name not in changed:
            assert a[DIM[name]] == 0.0, name


def test_names_and_range():
    assert ACTION_DIM == 12 == len(set(ACTION_NAMES))
    a = act(BASE_CUDA, BASE_CUDA.replace("acc +=", "acc -="))
    assert a.dtype == np.float32 and a.shape == (12,)
    assert ((a >= 0) & (a <= 1)).all()


def test_block_size_doubling_sets_tile_dim():
    a = act(BASE_CUDA, BASE_CUDA.replace("#define BLOCK_SIZE 128", "#define BLOCK_SIZE 256"))
    assert a[DIM["tile_log2_ratio"]] == pytest.approx(0.5 + math.log2(256 / 128) / 8)  # 0.625
    untouched(a, "tile_log2_ratio")
    assert EDIT_CLASSES[edit_class(a)] == "tile"


def test_tile_dim_averages_only_changed_constants_and_is_signed():
    old = "BLOCK_M = 64\nBLOCK_N = 64\nBLOCK_K = 32\n"
    new = "BLOCK_M = 256\nBLOCK_N = 64\nBLOCK_K = 16\n"
    expected = (math.log2(256 / 64) + math.log2(16 / 32)) / 2  # BLOCK_N unchanged: not averaged
    a = act(old, new, "triton")
    assert a[DIM["tile_log2_ratio"]] == pytest.approx(signed(expected, 4))
    shrink = act("TILE_K = 64\n", "TILE_K = 8\n", "triton")
    assert shrink[DIM["tile_log2_ratio"]] == pytest.approx(signed(math.log2(8 / 64), 4))  # below 0.5


def test_tile_constants_in_triton_config_dicts_and_constexpr_defaults():
    old = "configs = [triton.Config({'BLOCK_M': 128, 'BLOCK_N': 64}, num_warps=4)]\n"
    new = "configs = [triton.Config({'BLOCK_M': 64, 'BLOCK_N': 64}, num_warps=4)]\n"
    assert act(old, new, "triton")[DIM["tile_log2_ratio"]] == pytest.approx(signed(-1, 4))
    old = "template <int TILE = 16>\n__global__ void k(float* a) {}\n"
    assert act(old, old.replace("16", "32"))[DIM["tile_log2_ratio"]] == pytest.approx(signed(1, 4))


def test_num_warps_doubling_sets_launch_dim():
    a = act(BASE_TRITON, BASE_TRITON.replace("num_warps=4", "num_warps=8"), "triton")
    assert a[DIM["launch_config"]] == pytest.approx(0.5 + math.log2(8 / 4) / 8)  # 0.625
    untouched(a, "launch_config")
    assert EDIT_CLASSES[edit_class(a)] == "launch"


def test_launch_dim_for_cuda_launch_arguments_and_launch_bounds():
    old = "void f() { k<<<blocks, 128>>>(x); }\n"
    assert act(old, old.replace("128", "512"))[DIM["launch_config"]] == pytest.approx(signed(2, 4))
    old = "__global__ void __launch_bounds__(256, 4) k(float* x) {}\n"
    assert act(old, old.replace("4)", "2)"))[DIM["launch_config"]] == pytest.approx(signed(-1, 4))
    # a non-numeric launch change (stream argument added): +0.5 by rule
    old = "void f() { k<<<grid, block>>>(x); }\n"
    new = "void f() { k<<<grid, block, 0, stream>>>(x); }\n"
    assert act(old, new)[DIM["launch_config"]] == pytest.approx(signed(0.5, 4))


def test_shared_memory_added_sets_shared_dim():
    new = BASE_CUDA.replace("    float acc = 0.f;\n", "    float acc = 0.f;\n    __shared__ float buf[BLOCK_SIZE];\n")
    a = act(BASE_CUDA, new)
    assert a[DIM["shared_mem"]] == pytest.approx(signed(1, 2))  # 0.75
    untouched(a, "shared_mem")
    assert EDIT_CLASSES[edit_class(a)] == "shared_mem"
    removed = act(new, BASE_CUDA)
    assert removed[DIM["shared_mem"]] == pytest.approx(signed(-1, 2))


def test_pragma_unroll_added_sets_unroll_dim():
    new = BASE_CUDA.replace("    for (int k", "    #pragma unroll\n    for (int k")
    a = act(BASE_CUDA, new)
    assert a[DIM["unroll"]] == pytest.approx(signed(1, 2))
    untouched(a, "unroll")
    assert EDIT_CLASSES[edit_class(a)] == "unroll"
    tri = act("for i in range(4):\n    pass\n", "for i in tl.static_range(4):\n    pass\n", "triton")
    assert tri[DIM["unroll"]] == pytest.approx(signed(1, 2))


def test_barriers_set_sync_dim():
    new = BASE_CUDA.replace("    y[i] = acc;", "    __syncthreads();\n    y[i] = acc;\n    __syncthreads();")
    a = act(BASE_CUDA, new)
    assert a[DIM["sync"]] == pytest.approx(signed(2, 8))
    untouched(a, "sync")


def test_vector_types_set_vector_dim():
    new = BASE_CUDA.replace("    float acc = 0.f;", "    float acc = 0.f;\n    const float4 v = reinterpret_cast<const float4*>(x)[i];")
    a = act(BASE_CUDA, new)
    assert a[DIM["vector_width"]] == pytest.approx(signed(2, 4))
    hints = act("offs = pid * B\n", "offs = tl.max_contiguous(tl.multiple_of(pid * B, B), B)\n", "triton")
    assert hints[DIM["vector_width"]] == pytest.approx(signed(2, 4))


def test_dtype_change_uses_mean_log2_precision():
    new = BASE_CUDA.replace("float", "__half")
    a = act(BASE_CUDA, new)
    # every float token becomes __half: precision 24 -> 11 significand bits
    assert a[DIM["dtype_precision"]] == pytest.approx(signed(math.log2(11) - math.log2(24), 2))
    assert EDIT_CLASSES[edit_class(a)] == "dtype"
    # fp16 <-> bf16 (same width) is still a visible change
    tri = act("y = x.to(tl.float16)\n", "y = x.to(tl.bfloat16)\n", "triton")
    assert tri[DIM["dtype_precision"]] == pytest.approx(signed(math.log2(8) - math.log2(11), 2))
    # Triton counts tl./torch. dtypes only: python's float("inf") is not a dtype token
    py = act('m = -float("inf")\ny = x.to(tl.float32)\n', 'm = -float("inf")\ny = x.to(tl.float16)\n', "triton")
    assert py[DIM["dtype_precision"]] == pytest.approx(signed(math.log2(11) - math.log2(24), 2))


def test_tensor_core_markers():
    a = act("acc += a * b\n", "acc += tl.dot(a, b)\n", "triton")
    assert a[DIM["tensor_core"]] == pytest.approx(signed(1, 4))
    assert EDIT_CLASSES[edit_class(a)] == "tensor_core"


def test_kernel_added_and_removed():
    extra = "__global__ void second_kernel(float* y) {\n    y[0] = 0.f;\n}\n"
    a = act(BASE_CUDA, BASE_CUDA + extra)
    assert a[DIM["kernels_added"]] == pytest.approx(1 / 5) and a[DIM["kernels_removed"]] == 0.0
    untouched(a, "kernels_added")
    assert EDIT_CLASSES[edit_class(a)] == "kernel_added"
    b = act(BASE_CUDA + extra, BASE_CUDA)
    assert b[DIM["kernels_removed"]] == pytest.approx(1 / 5)
    assert EDIT_CLASSES[edit_class(b)] == "kernel_removed"
    # a renamed Triton kernel is one added and one removed; __launch_bounds__ is skipped
    tri = act(BASE_TRITON, BASE_TRITON.replace("def scale_kernel", "def scale_kernel_v2"), "triton")
    assert (tri[DIM["kernels_added"]], tri[DIM["kernels_removed"]]) == (pytest.approx(0.2), pytest.approx(0.2))
    facts = kernel_facts(lex("__global__ void __launch_bounds__(256, 2) named(float* x) {}", "cuda"), "cuda")
    assert facts.kernels == {"named"}


def test_kernel_counts_are_capped_at_five():
    many = "".join(f"__global__ void k{i}(float* y) {{ y[0] = 0.f; }}\n" for i in range(8))
    assert act("int x;\n", many)[DIM["kernels_added"]] == 1.0


def test_size_ratio_and_first_change_location():
    old = "".join(f"int v{i} = {i};\n" for i in range(10))
    new = old.replace("int v3 = 3;\n", "int v3 = 3;\nint w = 1;\nint z = 2;\n")
    a = act(old, new)
    n_old, n_new = len(lex(old, "cuda")) + 3, len(lex(new, "cuda")) + 3
    assert a[DIM["size_ratio"]] == pytest.approx(min(n_new / n_old, 3) / 3)
    assert a[DIM["first_change"]] == pytest.approx(4 / 12)  # first differing line index 4 of max(10, 12)
    grown = act("int a;\n", "int a;\n" * 20)
    assert grown[DIM["size_ratio"]] == 1.0  # capped at 3, /3
    assert act(old, old)[DIM["first_change"]] == 1.0


def test_rename_only_is_class_other():
    a = act(BASE_CUDA, BASE_CUDA.replace("acc", "total"))
    untouched(a)
    assert EDIT_CLASSES[edit_class(a)] == "other"


def test_change_indicators_formula():
    a = np.array([0.625, 0.5, 0.25, 0.5, 0.5, 1.0, 0.5, 0.5, 0.4, 0.0, 0.3, 0.9], dtype=np.float32)
    expected = [0.25, 0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.4, 0.0]
    assert change_indicators(a) == pytest.approx(expected)
    assert EDIT_CLASSES[edit_class(a)] == "unroll"
    neutral = np.array([0.5] * 8 + [0.0, 0.0, 0.7, 0.2], dtype=np.float32)
    assert EDIT_CLASSES[edit_class(neutral)] == "other"
