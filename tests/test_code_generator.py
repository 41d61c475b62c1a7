"""The code domain's embedded source: seeded commits on the standard library's files (code-gen-1)."""

import ast
import hashlib
import json
import platform
import subprocess
import sys
from collections import Counter

import pytest

from wmkit_code import generator as gen
from wmkit_code.domain import CodeDomain

HASH_ROWS = ("import hashlib, json, sys; from wmkit_code import generator as g; "
             "rows = list(g.generate(int(sys.argv[1]))); "
             "print(hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest())")


def _digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def test_two_processes_generate_identical_rows():
    n = 24
    outs = [subprocess.run([sys.executable, "-c", HASH_ROWS, str(n)], capture_output=True, text=True, check=True,
                           timeout=120, env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip()
            for seed in ("1", "2")]
    assert outs[0] == outs[1] == _digest(list(gen.generate(n)))
    assert _digest(list(gen.generate(n - 1))) != outs[0]


def test_rows_are_real_edits_of_stdlib_files_in_chains():
    rows = list(gen.generate(40))
    assert len(rows) == 40 and len({r["commit"] for r in rows}) == 40
    root = gen.stdlib_root()
    for prev, row in zip(rows, rows[1:]):
        assert row["old_contents"] != row["new_contents"]
        ast.parse(row["new_contents"])  # every edit leaves valid Python
        if prev["new_file"] == row["new_file"] and int(row["commit"].split("-")[1]) % gen.CHAIN:
            assert row["old_contents"] == prev["new_contents"]  # a chain: the next commit starts where one ended
    starts = [r for r in rows if int(r["commit"].split("-")[1]) % gen.CHAIN == 0]
    for row in starts:  # a chain starts from the installed file itself
        assert row["old_contents"] == (root / row["old_file"].removeprefix("Lib/")).read_text(encoding="utf-8")
    assert set(Counter(r["edit"] for r in rows)) <= set(gen.EDITS) and len({r["edit"] for r in rows}) >= 6


MODULE = '''"""A module to edit."""

import os
from collections import OrderedDict
import sys

LIMIT = 10


def first(items, default=None):
    """Return the first item."""
    for item in items:
        return item
    return default


def second(items):
    """Return the second item."""
    if len(items) < 2:
        return None
    return items[1]


class Store:
    def get(self, key):
        if key is None:
            raise KeyError(key)
        return first([key])

    def put(self, key, value):
        self.data = value
        return second([key, value])
''' + "\n# padding so that the file is within the generator's size range\n" * 40


@pytest.mark.parametrize("kind", gen.EDITS)
def test_each_edit_kind_applies_and_stays_valid(kind):
    import random

    src = gen._Source(MODULE, ast.parse(MODULE))
    new = gen.EDIT_FUNCTIONS[kind](src, random.Random(3))
    assert new is not None and new != MODULE
    ast.parse(new)
    if kind == "rename_function":
        (old_name,) = {f.name for f in src.functions} - {f.name for f in gen._Source(new, ast.parse(new)).functions}
        assert f"{old_name}(" not in new  # call sites follow the definition
    if kind == "reorder_imports":
        assert sorted(new.splitlines()) == sorted(MODULE.splitlines())


def test_fingerprint_names_the_version_the_python_and_the_files(tmp_path):
    fp = gen.fingerprint(100)
    assert fp.startswith(f"{gen.GENERATOR_VERSION}:python={platform.python_version()}:") and fp.endswith(":pairs=100")
    assert gen.fingerprint(101) != fp
    (tmp_path / "mod.py").write_text(MODULE)
    other = gen.fingerprint(100, str(tmp_path))
    assert other != fp and ":files=1:" in other
    (tmp_path / "two.py").write_text(MODULE)
    gen.stdlib_files.cache_clear()
    assert gen.fingerprint(100, str(tmp_path)) != other


def test_domain_owns_the_embedded_sources(tmp_path, monkeypatch):
    d = CodeDomain({"embedded_pairs": 9})
    assert d.default_source == "embedded:stdlib+git"
    assert d.rows("jsonl:x.jsonl") is None and d.source_fingerprint("git:.") is None
    assert [r["commit"] for r in d.rows("embedded:stdlib")] == [r["commit"] for r in gen.generate(9)]
    assert d.source_fingerprint("embedded:stdlib") == gen.fingerprint(9)
    # embedded_pairs changes the source, not the transitions: not in the domain fingerprint
    assert d.fingerprint() == CodeDomain().fingerprint() == "code:code-ast-1:action='15d',tokens='ast'"
    monkeypatch.chdir(tmp_path)  # not a git repository: the generated rows only
    assert d.source_fingerprint("embedded:stdlib+git") == gen.fingerprint(9)
    assert len(list(d.rows("embedded:stdlib+git"))) == 9
    subprocess.run(["git", "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("def f(x):\n    return x\n")
    subprocess.run(["git", "add", "a.py"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "add f"], check=True)
    fp = d.source_fingerprint("embedded:stdlib+git")
    assert fp.startswith(gen.fingerprint(9) + "+git:")
    rows = list(d.rows("embedded:stdlib+git"))
    assert len(rows) == 10 and rows[-1]["new_file"] == "a.py" and rows[-1]["subject"] == "add f"


def test_prepare_keeps_most_generated_commits(tmp_path):
    from wmkit import prepare as prepare_mod

    d = CodeDomain({"embedded_pairs": 160})
    data = prepare_mod.prepare(d, "embedded:stdlib", max_len=128, window="edit", cache_dir=tmp_path, progress=False,
                               workers=1)
    counts = data.meta["counts"]
    assert counts["rows_read"] == 160 and counts["kept"] >= 0.7 * 160
    assert set(counts["dropped"]) <= {"few_changed_tokens", "no_token_change"}
    assert data.meta["source_fingerprint"] == gen.fingerprint(160)
    # the action and labels are the code domain's own, computed from the two texts
    row = next(gen.generate(1))
    tr = CodeDomain().transition(row)
    i = data.ids.index(row["commit"])
    assert (data.actions[i] == tr.action).all() and int(data.labels["joint"][i]) == tr.labels["joint"]
