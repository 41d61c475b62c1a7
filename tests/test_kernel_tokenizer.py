"""Kernel tokenizer: fixed disjoint vocabulary, dedicated kernel tokens, stable hashing
(spec §11 D1/D2, docs/reference.md#d1, #d2)."""

import json
import math
import os
import subprocess
import sys

import pytest

from wmkit.errors import DataError
from wmkit_kernel import tokenizer as tk
from wmkit_kernel.tokenizer import (BOS, EOS, KERNEL_ID, LANG_ID, PAD, RANGES, VOCAB, describe, detect_language,
                                    fnv1a_32, identifier_id, lex, tile_axis, tokenize)

CUDA = r'''
#include <cuda_fp16.h>
#define BLOCK_SIZE 256
// a line comment
__global__ void scale_kernel(const float* __restrict__ x, float* y, int n) {
    __shared__ float tile[BLOCK_SIZE];   /* block comment */
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    #pragma unroll 4
    for (int k = 0; k < 4; ++k) { tile[threadIdx.x] = x[i] * 1.5f; }
    __syncthreads();
    y[i] = __shfl_down_sync(0xffffffff, tile[threadIdx.x], 16);
}
void launch(const float* x, float* y, int n) { scale_kernel<<<(n + 255) / 256, 256>>>(x, y, n); }
'''

TRITON = '''
import triton
import triton.language as tl

@triton.autotune(configs=[triton.Config({'BLOCK_M': 128}, num_warps=4)], key=["M"])
@triton.jit
def add_kernel(x_ptr, y_ptr, n, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(axis=0)
    offs = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offs, mask=offs < n)
    acc = tl.dot(x, x)
    tl.store(y_ptr + offs, tl.sum(acc, axis=0), mask=offs < n)
'''


def names(ids):
    return [describe(i) for i in ids]


# -- vocabulary ------------------------------------------------------------------------------------
def test_ranges_are_disjoint_and_cover_the_vocabulary():
    spans = sorted(RANGES.values())
    assert spans[0][0] == 0 and spans[-1][1] == VOCAB.size == 2048
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a0 < a1 == b0 < b1  # contiguous, non-empty, non-overlapping
    assert VOCAB.version == "kernel-lex-1" and VOCAB.pad_id == PAD == 0
    assert dict(VOCAB.ranges) == RANGES


@pytest.mark.parametrize("table, span", [(tk.KERNEL_ID, "kernel"), (tk.KEYWORD_ID, "keyword"),
                                         (tk.OPERATOR_ID, "operator"), (tk.CATEGORY_ID, "category")])
def test_every_table_stays_inside_its_range_with_unique_ids(table, span):
    lo, hi = RANGES[span]
    ids = list(table.values())
    assert len(set(ids)) == len(ids)
    assert all(lo <= i < hi for i in ids)


def test_special_and_language_ids():
    assert (PAD, BOS, EOS) == (0, 1, 2)
    assert all(RANGES["language"][0] <= i < RANGES["language"][1] for i in LANG_ID.values())


# -- hashing ---------------------------------------------------------------------------------------
def test_fnv1a_matches_published_test_vectors():
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_identifier_bucket_formula():
    expected = 1024 + fnv1a_32("my_variable".encode()) % 1024
    assert identifier_id("my_variable") == expected
    ids = tokenize("int my_variable = 0;", "cuda")
    assert expected in ids


def test_ids_are_stable_across_fresh_processes_with_different_hash_seeds():
    code = ("import json, sys; from wmkit_kernel.tokenizer import tokenize; "
            "src = json.loads(sys.stdin.read()); "
            "print(json.dumps([tokenize(src['cuda'], 'cuda'), tokenize(src['triton'], 'triton')]))")
    payload = json.dumps({"cuda": CUDA, "triton": TRITON})
    outputs = []
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, text=True,
                              env=env, check=True, timeout=60)
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0] == [tokenize(CUDA, "cuda"), tokenize(TRITON, "triton")]


# -- CUDA ------------------------------------------------------------------------------------------
def test_cuda_sequence_shape_and_kernel_tokens():
    ids = tokenize(CUDA, "cuda")
    assert ids[0] == BOS and ids[1] == LANG_ID["cuda"] and ids[-1] == EOS
    assert all(0 <= i < VOCAB.size for i in ids)
    got = names(ids)
    for token in ("__global__", "__shared__", "__restrict__", "blockIdx.x", "blockDim.x", "threadIdx.x",
                  "#pragma unroll", "__syncthreads", "__shfl_down_sync", "<<<", ">>>", "<tile>"):
        assert token in got, token
    assert got.count("<<<") == 1 and got.count(">>>") == 1
    assert "<include>" in got and "<define>" in got


def test_comments_and_whitespace_are_dropped():
    reformatted = CUDA.replace("    ", "\t").replace(" = ", "=").replace("// a line comment", "/* other */")
    assert tokenize(reformatted, "cuda") == tokenize(CUDA, "cuda")


def test_define_and_pragma_bodies_are_tokenized():
    got = names(tokenize("#define BLOCK_SIZE 256\n#pragma unroll 4\n", "cuda"))
    assert got[2:-1] == ["<define>", "<tile>", f"<int:{(256).bit_length()}>",
                         "#pragma unroll", f"<int:{(4).bit_length()}>"]


def test_include_header_is_hashed_like_an_identifier():
    ids = tokenize("#include <cuda_fp16.h>\n", "cuda")
    assert ids[2:-1] == [tk.CATEGORY_ID["include"], identifier_id("<cuda_fp16.h>")]


def test_operators_are_merged_by_longest_match():
    got = names(tokenize("x <<= 2; y = a->b; c = d::e; ++i;", "cuda"))
    assert "<<=" in got and "->" in got and "::" in got and "++" in got
    # '>>>' only closes an open launch; otherwise it is '>>' then '>'
    template = names(tokenize("auto t = a<b<c>>>d;", "cuda"))
    assert ">>>" not in template and ">>" in template
    launch = names(tokenize("k<<<g, b>>>(x);", "cuda"))
    assert launch[2:6] == [describe(identifier_id("k")), "<<<", describe(identifier_id("g")), ","]


def test_ptx_inside_asm_strings_gets_a_dedicated_token():
    got = names(tokenize('asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\\n" :: "r"(a));', "cuda"))
    assert "ptx:cp.async" in got
    assert "<string>" in got  # the plain constraint string "r"
    assert names(tokenize('asm("cp.async.wait_group 0;\\n" ::);', "cuda"))[4] == "ptx:cp.async.wait"
    assert names(tokenize('asm("@p ld.global.nc.v4.f32 {%0}, [%1];");', "cuda"))[4] == "ptx:ld"
    # English prose with periods is not PTX
    assert names(tokenize('printf("value must be set. e.g. st. x");', "cuda"))[4] == "<string>"


@pytest.mark.parametrize("literal, expected", [
    ("0", "<int:0>"), ("1", "<int:1>"), ("128", f"<int:{(128).bit_length()}>"),
    ("0x1F", f"<int:{(31).bit_length()}>"), ("10u", f"<int:{(10).bit_length()}>"),
    ("0777", f"<int:{(0o777).bit_length()}>"),
    ("1.5f", f"<float:2^{math.floor(math.log2(1.5))}>"), ("3e-5", f"<float:2^{math.floor(math.log2(3e-5))}>"),
    ("0.0", "<float:0>"), ("1e300", "<float:2^30>"),
])
def test_numbers_are_bucketed_by_magnitude(literal, expected):
    ids = tokenize(f"x = {literal};", "cuda")
    assert describe(ids[4]) == expected


# -- Triton ----------------------------------------------------------------------------------------
def test_triton_dotted_names_decorators_and_string_keys():
    ids = tokenize(TRITON, "triton")
    assert ids[1] == LANG_ID["triton"]
    got = names(ids)
    for token in ("@triton.jit", "@triton.autotune", "triton.Config", "tl.program_id", "tl.arange",
                  "tl.load", "tl.store", "tl.dot", "tl.sum", "tl.constexpr", "num_warps", "mask",
                  "<tile:M>", "<tile>", "triton.language"):
        assert token in got, token
    assert "<docstring>" not in got


def test_unknown_tl_attribute_falls_back_to_tl_dot_identifier():
    got = names(tokenize("y = tl.some_new_op(x)\n", "triton"))
    assert got[4:7] == ["tl", ".", describe(identifier_id("some_new_op"))]


# -- helpers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, axis", [
    ("BLOCK_M", "M"), ("BLOCK_SIZE_N", "N"), ("kBlockK", "K"), ("BM", "M"), ("TILE_K", "K"),
    ("BLOCK_SIZE", "other"), ("BLOCK_DMODEL", "other"), ("blockSize", "other"), ("TILE", "other"),
    ("blockIdx", None), ("BLOCKS_PER_SM", None), ("block", None), ("n_rows", None), ("GROUP_SIZE_M", None),
])
def test_tile_axis(name, axis):
    assert tile_axis(name) == axis


def test_detect_language():
    assert detect_language("a.cu", "", "Triton") == "triton"  # the declared language wins
    assert detect_language("kernels/add.py", "", None) == "triton"
    assert detect_language("x.cuh", "@triton.jit", None) == "cuda"
    assert detect_language("", "import triton\n@triton.jit\ndef f(): pass", None) == "triton"
    assert detect_language("", "__global__ void f() {}", None) == "cuda"


def test_unknown_language_is_a_clear_error():
    with pytest.raises(DataError, match="unknown language 'fortran'"):
        lex("x", "fortran")


def test_empty_source_is_just_markers():
    assert tokenize("", "cuda") == [BOS, LANG_ID["cuda"], EOS]
    assert tokenize("# only a comment\n", "triton") == [BOS, LANG_ID["triton"], EOS]


def test_every_kernel_table_entry_is_reachable_by_describe():
    assert describe(KERNEL_ID["tl.dot"]) == "tl.dot"
    assert describe(identifier_id("zzz")).startswith("<id:")
