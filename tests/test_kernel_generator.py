"""Embedded kernel-pair generator: deterministic, distinct, complete, and its actions match the transform."""

import ast
import hashlib
import json
import os
import random
import subprocess
import sys

import pytest

from wmkit_kernel.actions import ACTION_NAMES, action_vector, kernel_facts
from wmkit_kernel.generator import (FAMILIES, REPO, SUPPORTED, TRANSFORMS, combos, generate, make_pair)
from wmkit_kernel.tokenizer import lex

DIM = {name: i for i, name in enumerate(ACTION_NAMES)}
DEFAULT_PAIRS = 4000


@pytest.fixture(scope="module")
def default_rows():
    return list(generate(DEFAULT_PAIRS))


def test_rows_follow_the_commitpackft_schema():
    row = make_pair(7)
    for key in ("commit", "old_file", "new_file", "old_contents", "new_contents", "subject", "message", "lang",
                "license", "repos", "transform", "family"):
        assert isinstance(row[key], str) and row[key], key
    assert row["commit"] == "embedded-7" and row["repos"] == REPO
    assert row["lang"] in ("CUDA", "Triton") and row["old_contents"] != row["new_contents"]
    assert row["new_file"].endswith(".cu" if row["lang"] == "CUDA" else ".py")


def test_deterministic_and_independent_of_the_global_rng():
    random.seed(1)
    first = [make_pair(i) for i in (0, 5, 999)]
    random.seed(2)
    random.random()
    again = [make_pair(i) for i in (0, 5, 999)]
    assert first == again
    assert make_pair(5) != make_pair(6)


def test_same_pairs_in_a_fresh_process_with_another_hash_seed():
    code = ("import hashlib, json; from wmkit_kernel.generator import generate; "
            "print(hashlib.sha256(json.dumps(list(generate(60))).encode()).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED="987")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         timeout=60).stdout.strip()
    assert out == hashlib.sha256(json.dumps(list(generate(60))).encode()).hexdigest()


def test_default_pairs_are_all_distinct(default_rows):
    assert len(default_rows) == DEFAULT_PAIRS
    assert len({(r["old_contents"], r["new_contents"]) for r in default_rows}) == DEFAULT_PAIRS
    assert all(r["old_contents"] != r["new_contents"] for r in default_rows)
    # many distinct kernels, not a handful of templates
    assert len({r["old_contents"] for r in default_rows}) > 0.95 * DEFAULT_PAIRS


def test_every_claimed_combination_appears(default_rows):
    claimed = {(lang, fam, tr) for (lang, fam), trs in SUPPORTED.items() for tr in trs}
    assert set(combos()) == claimed
    assert {fam for _, fam, _ in claimed} == set(FAMILIES)
    assert {tr for _, _, tr in claimed} == set(TRANSFORMS)
    lang_name = {"cuda": "CUDA", "triton": "Triton"}
    seen = {(r["lang"], r["family"], r["transform"]) for r in default_rows[:len(claimed)]}
    assert seen == {(lang_name[lang], fam, tr) for lang, fam, tr in claimed}
    counts = {}
    for r in default_rows:
        key = (r["lang"], r["family"], r["transform"])
        counts[key] = counts.get(key, 0) + 1
    assert min(counts.values()) >= DEFAULT_PAIRS // len(claimed)


def test_language_restriction():
    rows = list(generate(40, languages=("triton",)))
    assert {r["lang"] for r in rows} == {"Triton"}
    assert {r["family"] for r in rows} == set(FAMILIES)


def test_sources_are_well_formed(default_rows):
    for r in default_rows[:650]:
        for text in (r["old_contents"], r["new_contents"]):
            if r["lang"] == "Triton":
                ast.parse(text)  # valid Python
                assert "@triton.jit" in text
            else:
                assert text.count("{") == text.count("}") and text.count("(") == text.count(")")
                assert "__global__" in text


def test_edits_pass_the_changed_token_filter(default_rows):
    prepare = pytest.importorskip("wmkit.prepare", reason="wmkit.prepare not available")
    short = [r["commit"] for r in default_rows[:650]
             if not prepare.has_changed_tokens(r["old_contents"], r["new_contents"], 5)]
    assert short == []


# transform -> (action dim, test on the component) that the transform must show
EXPECTED = {
    "tile_size": ("tile_log2_ratio", lambda v: v != 0.5),
    "launch_config": ("launch_config", lambda v: v != 0.5),
    "unroll": ("unroll", lambda v: v > 0.5),
    "vectorize": ("vector_width", lambda v: v > 0.5),
    "shared_mem": ("shared_mem", lambda v: v > 0.5),
    "warp_shuffle": ("sync", lambda v: v < 0.5),
    "dtype": ("dtype_precision", lambda v: v != 0.5),
    "epilogue_fusion": ("size_ratio", lambda v: v > 1 / 3),
}


@pytest.mark.parametrize("lang, family, transform", combos())
def test_action_reflects_the_transform(lang, family, transform):
    index = combos().index((lang, family, transform)) + len(combos())  # second round of the cycle
    row = make_pair(index)
    assert (row["family"], row["transform"]) == (family, transform)
    lo, ln = lex(row["old_contents"], lang), lex(row["new_contents"], lang)
    a = action_vector(kernel_facts(lo, lang), kernel_facts(ln, lang), row["old_contents"], row["new_contents"])
    name, check = EXPECTED[transform]
    assert check(float(a[DIM[name]])), (name, a[DIM[name]])
    assert a[DIM["kernels_added"]] == 0 and a[DIM["kernels_removed"]] == 0
