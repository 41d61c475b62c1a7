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

The parts: :mod:`wmkit_kernel.params` (the typed parameter record and how it is drawn),
:mod:`wmkit_kernel.cuda_templates` and :mod:`wmkit_kernel.triton_templates` (the renderers),
:mod:`wmkit_kernel.transforms` (the edits); this module puts a pair together.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, Iterator

from .cuda_templates import (render_cuda_elementwise, render_cuda_gemm, render_cuda_layernorm, render_cuda_reduction,
                             render_cuda_softmax)
from .params import DTYPES, EPILOGUES, OPS, REDUCE_OPS, CudaParams, KernelParams, TritonParams, sample_params
from .transforms import prepare_and_apply
from .triton_templates import (render_triton_elementwise, render_triton_gemm, render_triton_layernorm,
                               render_triton_reduction, render_triton_softmax)

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


def combos(languages=("cuda", "triton")) -> list[tuple[str, str, str]]:
    """Every supported (language, family, transform), in a fixed order."""
    return [(lang, fam, tr) for lang in ("cuda", "triton") if lang in languages
            for fam in FAMILIES for tr in TRANSFORMS if tr in SUPPORTED[(lang, fam)]]


def _rng(index: int) -> random.Random:
    digest = hashlib.sha256(f"{GENERATOR_VERSION}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


RENDERERS: dict[tuple[str, str], Callable[[KernelParams], str]] = {
    ("cuda", "elementwise"): render_cuda_elementwise, ("cuda", "reduction"): render_cuda_reduction,
    ("cuda", "softmax"): render_cuda_softmax, ("cuda", "layernorm"): render_cuda_layernorm,
    ("cuda", "gemm"): render_cuda_gemm,
    ("triton", "elementwise"): render_triton_elementwise, ("triton", "reduction"): render_triton_reduction,
    ("triton", "softmax"): render_triton_softmax, ("triton", "layernorm"): render_triton_layernorm,
    ("triton", "gemm"): render_triton_gemm,
}


def make_pair(index: int, languages=("cuda", "triton")) -> dict:
    """The ``index``-th generated row (deterministic in ``index`` and ``languages``)."""
    table = combos(languages)
    lang, family, transform = table[index % len(table)]
    rng = _rng(index)
    for _attempt in range(8):
        base, new = prepare_and_apply(rng, transform, sample_params(rng, lang, family))
        render = RENDERERS[(lang, family)]
        old_text, new_text = render(base), render(new)
        if old_text != new_text:
            break
    else:  # pragma: no cover - every transform changes the text
        raise RuntimeError(f"generator: pair {index} did not change ({lang}, {family}, {transform})")
    ext = ".cu" if lang == "cuda" else ".py"
    path = f"kernels/{family}/{base.name}{ext}"
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


__all__ = ["GENERATOR_VERSION", "REPO", "LANG_NAMES", "FAMILIES", "TRANSFORMS", "SUPPORTED", "EPILOGUES", "DTYPES",
           "OPS", "REDUCE_OPS", "KernelParams", "CudaParams", "TritonParams", "RENDERERS", "combos", "make_pair",
           "generate"]
