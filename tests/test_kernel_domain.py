"""The kernel domain: registration, options, transitions, file filters, embedded source, real data."""

import io
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from wmkit.domain import SkipRow, Transition  # noqa: E402
from wmkit.errors import DataError, RecipeError  # noqa: E402
from wmkit_kernel.actions import EDIT_CLASSES  # noqa: E402
from wmkit_kernel.domain import KernelDomain  # noqa: E402
from wmkit_kernel.generator import GENERATOR_VERSION, make_pair  # noqa: E402
from wmkit_kernel.tokenizer import BOS, EOS, LANG_ID, VOCAB, tokenize  # noqa: E402

KERNELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "kernels"

OLD = """#define BLOCK_SIZE 128
__global__ void add_kernel(const float* x, float* y, int n) {
    int i = blockIdx.x * BLOCK_SIZE + threadIdx.x;
    if (i < n) y[i] += x[i];
}
"""
NEW = OLD.replace("128", "256")


def row(old=OLD, new=NEW, **extra):
    base = {"commit": "c0ffee", "old_file": "k/add.cu", "new_file": "k/add.cu", "old_contents": old,
            "new_contents": new, "lang": "CUDA", "repos": "me/kernels"}
    base.update(extra)
    return base


# -- registration and options ----------------------------------------------------------------------
def test_plugin_registers_lazily_without_heavy_imports():
    code = ("import sys, wmkit_kernel.plugin as p; "
            "print(sorted(m for m in ('torch', 'numpy', 'pygments', 'datasets', 'wmkit_kernel.domain') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_plugin_host_finds_the_domain_with_its_defaults():
    from wmkit.plugins import PluginHost

    host = PluginHost()
    comp = host.get("domain", "kernel")
    assert comp.target == "wmkit_kernel.domain:KernelDomain"
    assert comp.info == {"default_source": "embedded:kernels", "default_recipe": "kernel_default"}
    assert set(comp.options) == {"embedded_pairs", "language"}
    domain = host.domain("kernel", {"language": "cuda"})
    assert isinstance(domain, KernelDomain) and domain.language == "cuda"


def test_options_are_validated():
    d = KernelDomain()
    assert (d.embedded_pairs, d.language) == (4000, "auto")
    with pytest.raises(RecipeError, match="data.language: 'fortran' is not one of"):
        KernelDomain({"language": "fortran"})
    with pytest.raises(RecipeError, match="data.embedded_pairs"):
        KernelDomain({"embedded_pairs": 0})


def test_model_facts():
    d = KernelDomain()
    assert d.vocab is VOCAB and d.vocab.size == 2048 and d.vocab.pad_id == 0
    assert d.action_dim == 12 and len(d.action_names) == 12
    assert set(d.label_names) == {"edit_class", "transform", "family", "lang"}
    assert d.label_names["edit_class"] == list(EDIT_CLASSES)
    assert "kernel-lex-1" in d.fingerprint()
    assert KernelDomain({"language": "cuda"}).fingerprint() != d.fingerprint()
    assert KernelDomain({"embedded_pairs": 10}).fingerprint() == d.fingerprint()  # the source's business


# -- transitions -------------------------------------------------------------------------------------
def test_transition_of_a_crafted_row():
    d = KernelDomain()
    tr = d.transition(row())
    assert isinstance(tr, Transition)
    assert tr.before == tokenize(OLD, "cuda") and tr.after == tokenize(NEW, "cuda")
    assert tr.before[:2] == [BOS, LANG_ID["cuda"]] and tr.after[-1] == EOS
    assert tr.action.shape == (12,) and tr.action.dtype == np.float32
    assert tr.action[0] == pytest.approx(0.625)  # BLOCK_SIZE 128 -> 256
    assert tr.labels == {"edit_class": EDIT_CLASSES.index("tile"), "transform": -1, "family": -1, "lang": 0}


def test_transition_of_a_generated_row_carries_transform_and_family():
    d = KernelDomain()
    r = make_pair(3)
    tr = d.transition(r)
    assert tr.labels["transform"] == d.label_names["transform"].index(r["transform"])
    assert tr.labels["family"] == d.label_names["family"].index(r["family"])
    assert tr.labels["lang"] == ["CUDA", "Triton"].index(r["lang"])


def test_language_comes_from_row_then_path_then_content():
    d = KernelDomain()
    tri = "@triton.jit\ndef k(x):\n    pass\n"
    assert d.transition(row(tri, tri + "x = 1\n", lang="Triton", new_file="k.py")).before[1] == LANG_ID["triton"]
    assert d.transition(row(tri, tri + "x = 1\n", lang=None, new_file="k.py")).before[1] == LANG_ID["triton"]
    assert d.transition(row(tri, tri + "x = 1\n", lang=None, new_file="", old_file="")).before[1] == LANG_ID["triton"]


def test_skips_and_errors():
    d = KernelDomain()
    with pytest.raises(SkipRow, match="unchanged"):
        d.transition(row(OLD, OLD))
    with pytest.raises(SkipRow, match="blank"):
        d.transition(row("  ", "\n"))
    with pytest.raises(SkipRow, match="language_cuda_filtered"):
        KernelDomain({"language": "triton"}).transition(row())
    with pytest.raises(DataError, match="c0ffee: new_contents is int, expected a string"):
        d.transition(row(new=5))
    assert d.transition(row(old=None)).before == tokenize("", "cuda")  # an added file


def test_tokenize_uses_the_language_option_or_detection():
    text = "@triton.jit\ndef k(x):\n    return x\n"
    assert KernelDomain().tokenize(text)[1] == LANG_ID["triton"]
    assert KernelDomain({"language": "cuda"}).tokenize(text)[1] == LANG_ID["cuda"]
    assert KernelDomain().tokenize(text, lang="cuda")[1] == LANG_ID["cuda"]


# -- git: file filters ---------------------------------------------------------------------------------
def test_accepts_file_and_text():
    d = KernelDomain()
    assert d.accepts_file("csrc/add.cu") and d.accepts_file("ops/softmax.py") and d.accepts_file("inc/x.cuh")
    assert not d.accepts_file("README.md") and not d.accepts_file("setup.cfg")
    assert d.accepts_text("a.cu", "", "int main() {}")
    assert d.accepts_text("a.h", "", "__device__ float f(float x);")
    assert not d.accepts_text("a.h", "int f();", "int g();")
    assert d.accepts_text("a.cpp", "cudaStream_t s;", "")
    assert d.accepts_text("k.py", "@triton.jit\ndef k(): pass\n", "")
    assert not d.accepts_text("k.py", "def k(): pass\n", "def k(): return 1\n")
    cuda_only = KernelDomain({"language": "cuda"})
    assert not cuda_only.accepts_file("k.py") and cuda_only.accepts_file("k.cu")


# -- the embedded source ---------------------------------------------------------------------------------
def test_embedded_source_rows_and_fingerprint():
    d = KernelDomain({"embedded_pairs": 25})
    rows = list(d.rows("embedded:kernels"))
    assert len(rows) == 25 and rows[0] == make_pair(0)
    assert d.rows("jsonl:somewhere.jsonl") is None and d.rows("embedded:commits") is None
    assert d.source_fingerprint("embedded:kernels") == f"{GENERATOR_VERSION}:pairs=25:languages=cuda,triton"
    assert d.source_fingerprint("jsonl:x") is None
    assert KernelDomain({"embedded_pairs": 26}).source_fingerprint("embedded:kernels") != d.source_fingerprint(
        "embedded:kernels")
    triton_only = KernelDomain({"embedded_pairs": 12, "language": "triton"})
    assert {r["lang"] for r in triton_only.rows("embedded:kernels")} == {"Triton"}


def test_prepare_on_the_embedded_source(tmp_path):
    prepare_mod = pytest.importorskip("wmkit.prepare", reason="wmkit.prepare (shared data preparation) is absent")
    d = KernelDomain({"embedded_pairs": 130})
    data = prepare_mod.prepare(d, "embedded:kernels", max_len=128, cache_dir=tmp_path, progress=False, workers=1,
                               keep_unchanged=True)
    counts = data.meta["counts"]
    assert counts["rows_read"] == 130 and counts["kept"] == 130 and len(data) == 130
    # by default the pairs whose edit lies beyond the first 128 tokens are dropped, and counted
    seen = prepare_mod.prepare(d, "embedded:kernels", max_len=128, cache_dir=tmp_path, progress=False, workers=1)
    dropped = seen.meta["counts"]["dropped"].get("no_token_change", 0)
    assert dropped == data.meta["truncation"]["in_arrays"] == seen.meta["truncation"]["dropped"]
    assert seen.meta["counts"]["kept"] == 130 - dropped
    assert data.meta["vocab_version"] == "kernel-lex-1" and data.meta["action_dim"] == 12
    assert data.before.shape == (130, 128) and int(np.max(data.before)) < VOCAB.size
    assert ((np.asarray(data.actions) >= 0) & (np.asarray(data.actions) <= 1)).all()
    transforms = np.asarray(data.labels["transform"])
    assert (transforms >= 0).all() and len(set(transforms.tolist())) == 8


# -- real data -----------------------------------------------------------------------------------------------
def _first_rows(path: Path, n: int) -> list[dict]:
    import zstandard

    out = []
    with open(path, "rb") as fh:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"):
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def _outcome(r: dict) -> str:
    try:
        tr = KernelDomain().transition(r)
    except SkipRow as exc:
        return f"skip:{exc}"
    ok = (tr.action.shape == (12,) and np.isfinite(tr.action).all() and (tr.action >= 0).all()
          and (tr.action <= 1).all() and max(tr.before + tr.after) < VOCAB.size and min(tr.before + tr.after) >= 0
          and tr.before[0] == BOS and tr.after[-1] == EOS)
    return "ok" if ok else "bad"


def test_real_kernel_rows_transition():
    path = KERNELS / "val.jsonl.zst"
    if not path.exists():
        pytest.skip("needs ../shared/data/kernels/val.jsonl.zst: the real CUDA/Triton commit set")
    rows = _first_rows(path, 200)
    with multiprocessing.get_context("fork").Pool(2) as pool:  # Pygments lexing is the cost; 2 cores
        outcomes = pool.map(_outcome, rows, chunksize=10)
    assert "bad" not in outcomes
    assert outcomes.count("ok") >= 0.95 * len(rows), [o for o in outcomes if o != "ok"][:5]
