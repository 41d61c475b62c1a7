"""Shared preparation: filters and drop counts, split, truncation, trajectories, cache."""

import hashlib
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest

from wmkit.domain import Domain, SkipRow, Transition, Vocabulary
from wmkit.errors import DataError
from wmkit.prepare import (PreparedData, changed_tokens, fit_window, has_changed_tokens, prepare)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "commits-py"


class Words(Domain):
    """Tokens: BOS, 3 + (len(word) % 10) per word, EOS. Action: [grew, shrank]. Label: grew."""

    name = "words"
    label_names = {"grew": ["no", "yes"]}

    @property
    def vocab(self):
        return Vocabulary(size=13, pad_id=0, version="words-1", ranges={"specials": (0, 3), "words": (3, 13)})

    @property
    def action_names(self):
        return ["grew", "shrank"]

    def tokenize(self, text):
        return [1] + [3 + len(w) % 10 for w in text.split()] + [2]

    def transition(self, row):
        old, new = row["old_contents"], row["new_contents"]
        if "SKIP" in new:
            raise SkipRow("marked")
        if "BOOM" in new:
            raise RuntimeError("tokenizer exploded")
        grew = len(new) > len(old)
        return Transition(self.tokenize(old), self.tokenize(new), np.array([grew, not grew], np.float32),
                          {"grew": int(grew)})


def words(n, seed=0):
    rng = random.Random(seed)
    return " ".join(rng.choice(["a", "bb", "ccc", "dddd"]) for _ in range(n))


def row(i, old, new, **extra):
    return {"commit": f"{i:040x}", "old_contents": old, "new_contents": new, "new_file": f"f{i}.py",
            "repos": "o/r", **extra}


def write(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return f"jsonl:{path}"


def run(tmp_path, source, **kw):
    kw.setdefault("max_len", 16)
    kw.setdefault("progress", False)
    kw.setdefault("workers", 1)
    kw.setdefault("cache_dir", tmp_path / "cache")
    return prepare(Words(), source, **kw)


def test_changed_tokens_counts_words_on_changed_lines():
    assert changed_tokens("a b\nc d e\n", "a b\nc X e\n") == 6  # one line replaced: 3 + 3 words
    assert changed_tokens("a\n", "a\nnew line here\n") == 3
    assert changed_tokens("x y\nkeep\n", "keep\n") == 2
    assert changed_tokens("same\n", "same\n") == 0
    assert changed_tokens("", "one two\n") == 2
    rng = random.Random(3)
    vocab = ["a = 1", "b = 2", "return x", "pass", "def f(x):", "  y = x + 1", ""]
    for _ in range(300):
        a = "\n".join(rng.choice(vocab) for _ in range(rng.randrange(8)))
        b = "\n".join(rng.choice(vocab) for _ in range(rng.randrange(8)))
        for k in (0, 1, 3, 5, 8):
            assert has_changed_tokens(a, b, k) == (changed_tokens(a, b) >= k)


def test_filters_count_every_drop_by_reason(tmp_path):
    rows = [row(0, "", "  \n"),                                   # blank
            row(1, words(3), "x" * 100),                           # too long (max_chars=50)
            row(2, "a b\n", "a c\n"),                                # 2 + 2 changed tokens < 5
            row(3, words(3), words(6, 1) + " SKIP"),               # SkipRow("marked")
            row(4, words(3), words(6, 2) + " BOOM"),               # exception -> tokenize_error
            row(5, words(3), words(8, 3)),                         # kept
            row(6, words(8, 4), words(2, 5))]                      # kept
    data = run(tmp_path, write(tmp_path / "r.jsonl", rows), max_chars=50)
    counts = data.meta["counts"]
    assert counts["dropped"] == {"blank": 1, "too_long": 1, "few_changed_tokens": 1, "marked": 1,
                                 "tokenize_error": 1}
    assert counts["rows_read"] == 7 and counts["kept"] == 2 == len(data)
    assert "RuntimeError: tokenizer exploded" in data.meta["first_tokenize_error"]
    assert data.labels["grew"].tolist() == [1, 0]
    assert data.actions.tolist() == [[1, 0], [0, 1]]
    assert data.before.dtype == np.int32 and data.before.shape == (2, 16) and data.actions.dtype == np.float32


def test_limit_stops_after_that_many_kept_rows_and_workers_agree(tmp_path):
    rows = [row(i, words(4, i), words(9, 1000 + i)) if i % 3 else row(i, "a\n", "b\n") for i in range(300)]
    source = write(tmp_path / "r.jsonl", rows)
    one = run(tmp_path, source, limit=50)
    assert len(one) == 50 and one.meta["counts"]["kept"] == 50
    # rows 1, 2, 4, 5, ...: the 50th kept row is row 74; rows 0, 3, ..., 72 (25 rows) were dropped
    assert one.meta["counts"]["rows_read"] == 75 and one.meta["counts"]["dropped"] == {"few_changed_tokens": 25}
    full_one = run(tmp_path, source, workers=1)
    full_two = run(tmp_path, source, workers=2, cache_dir=tmp_path / "other")  # through the process pool
    assert full_two.meta["workers"] == 2 and len(full_two) == 200
    for name in ("before", "after", "actions", "split", "trajectory"):
        np.testing.assert_array_equal(getattr(full_one, name), getattr(full_two, name))
    assert full_one.ids == full_two.ids
    np.testing.assert_array_equal(full_one.before[:50], one.before)


def expected_split(commit, val_percent=10):
    return int(int(hashlib.sha256(("split:" + commit).encode()).hexdigest()[:8], 16) % 100 < val_percent)


def test_split_by_commit_hash_independent_of_any_seed(tmp_path):
    rows = [row(i, words(4, i), words(9, 500 + i)) for i in range(200)]
    source = write(tmp_path / "r.jsonl", rows)
    random.seed(1)
    np.random.seed(1)
    a = run(tmp_path, source, val_percent=20)
    random.seed(2)
    np.random.seed(2)
    b = run(tmp_path, source, val_percent=20, cache_dir=tmp_path / "fresh")
    expected = [expected_split(r["commit"], 20) for r in rows]
    assert a.split.tolist() == expected == b.split.tolist()
    assert 20 < sum(expected) < 60
    assert a.val_indices().tolist() == [i for i, s in enumerate(expected) if s]
    assert a.train_indices().dtype == np.int64
    assert a.meta["counts"]["val"] == sum(expected) and a.meta["counts"]["train"] == 200 - sum(expected)


def test_split_column_wins_and_bad_values_are_reported(tmp_path):
    names = ["train", "val", "validation", "test", "train", "holdout"]
    rows = [row(i, words(4, i), words(9, 50 + i), split=s) for i, s in enumerate(names)]
    data = run(tmp_path, write(tmp_path / "r.jsonl", rows))
    assert data.split.tolist() == [0, 1, 1, 1, 0, 1]
    bad = [row(0, words(4), words(9, 1), split="heldout")]
    with pytest.raises(DataError, match="heldout"):
        run(tmp_path, write(tmp_path / "bad.jsonl", bad))


def test_train_only_split_column_holds_out_by_hash(tmp_path):
    """A source whose split column says "train" everywhere (train.jsonl.zst alone) still gets a
    held-out set: val_percent of its rows by a hash of the commit under another salt than the usual
    "split:" rule (the data may have been split with that rule already), never by seed."""
    rows = [row(i, words(4, i), words(9, 500 + i), split="train") for i in range(200)]
    data = run(tmp_path, write(tmp_path / "r.jsonl", rows), val_percent=20)
    expected = [int(int(hashlib.sha256(("holdout:" + r["commit"]).encode()).hexdigest()[:8], 16) % 100 < 20)
                for r in rows]
    assert data.split.tolist() == expected and 20 < sum(expected) < 60
    assert data.meta["counts"]["split_rule"].startswith("hash")
    for i in data.val_indices():
        assert data.texts(int(i)) == (rows[i]["old_contents"], rows[i]["new_contents"])


def test_texts_are_kept_for_validation_rows_only(tmp_path):
    rows = [row(i, f"old {i} " + words(4, i), f"new {i} " + words(9, 50 + i), split="val" if i % 2 else "train")
            for i in range(6)]
    data = run(tmp_path, write(tmp_path / "r.jsonl", rows))
    for i in data.val_indices():
        assert data.texts(int(i)) == (rows[i]["old_contents"], rows[i]["new_contents"])
    with pytest.raises(KeyError):
        data.texts(0)


def test_truncation_identical_count_and_edit_window(tmp_path):
    base = [f"w{i % 4}" for i in range(40)]  # 40 words -> 42 tokens
    late = list(base)
    late[30] = "changed_word!"  # token 31 differs, far beyond max_len=16
    early = list(base)
    early[2] = "xyz12"
    rows = [row(0, " ".join(base), " ".join(late)), row(1, " ".join(base), " ".join(early))]
    source = write(tmp_path / "r.jsonl", rows)
    head = run(tmp_path, source, min_changed_tokens=0, keep_unchanged=True)
    assert head.meta["truncation"] == {"identical_after_truncation": 1, "dropped": 0, "in_arrays": 1, "rate": 0.5}
    assert np.array_equal(head.before[0], head.after[0]) and not np.array_equal(head.before[1], head.after[1])
    # by default the pair the cut made identical is dropped, and the report says so
    dropped = run(tmp_path, source, min_changed_tokens=0)
    assert dropped.meta["truncation"] == {"identical_after_truncation": 1, "dropped": 1, "in_arrays": 0, "rate": 0.5}
    assert dropped.meta["counts"]["dropped"] == {"no_token_change": 1} and len(dropped.before) == 1
    assert not np.array_equal(dropped.before[0], dropped.after[0])
    edit = run(tmp_path, source, min_changed_tokens=0, window="edit")
    assert edit.meta["truncation"]["identical_after_truncation"] == 0
    dom = Words()
    full_b, full_a = dom.tokenize(rows[0]["old_contents"]), dom.tokenize(rows[0]["new_contents"])
    first = next(i for i, (x, y) in enumerate(zip(full_b, full_a)) if x != y)
    assert first == 31
    start = first - 8  # centred: max_len // 2 before the first difference
    assert edit.before[0].tolist() == full_b[start:start + 16] and edit.after[0].tolist() == full_a[start:start + 16]
    assert edit.before[1].tolist() == full_b[:16]  # an early edit keeps the head


def test_fit_window_clips_and_pads():
    before, after = list(range(1, 11)), list(range(1, 9)) + [99, 10]  # differ at index 8
    b, a, same = fit_window(before, after, 6, "edit", 0)
    assert b.tolist() == [5, 6, 7, 8, 9, 10] and a.tolist() == [5, 6, 7, 8, 99, 10] and not same  # clipped at the end
    b, a, same = fit_window([1, 2], [1, 2, 3], 4, "head", 0)
    assert b.tolist() == [1, 2, 0, 0] and a.tolist() == [1, 2, 3, 0] and not same
    b, a, same = fit_window([1, 2, 3, 4], [1, 2, 3, 5], 2, "head", 0)
    assert same


def test_trajectories_chain_successive_edits_of_one_file(tmp_path):
    v = [words(5, s) for s in range(10, 16)]
    rows = [row(0, v[0], v[1], new_file="a.py"), row(1, v[1], v[2], new_file="a.py"),
            row(2, v[3], v[4], new_file="a.py"),  # does not start where the last one ended
            row(3, v[4], v[5], new_file="a.py"),
            row(4, v[5], v[0], new_file="b.py")]  # another file
    data = run(tmp_path, write(tmp_path / "r.jsonl", rows), min_changed_tokens=0)
    assert data.trajectory.tolist() == [0, 0, 1, 1, 2]
    assert data.trajectory.dtype == np.int32


def test_ids_are_unique_when_a_commit_has_several_files(tmp_path):
    files = [f"m{i}.py" for i in range(40)]
    rows = [row(0, words(4, i), words(9, 100 + i), new_file=f) for i, f in enumerate(files)]
    rows += [row(1, words(4, 5), words(9, 6)), row(1, words(4, 5), words(9, 6))]  # an exact repeat of c1's row
    rows += [row(2, words(4, 7), words(9, 8))]
    data = run(tmp_path, write(tmp_path / "r.jsonl", rows), val_percent=30)
    c0, c1, c2 = f"{0:040x}", f"{1:040x}", f"{2:040x}"
    assert data.ids == [f"{c0}:{f}" for f in files] + [f"{c1}:f1.py", f"{c1}:f1.py#2", c2]
    # row id = the commit, or commit:new_file when the commit repeats; a repeat shares its original's side
    expected = [expected_split(f"{c0}:{f}", 30) for f in files] + [expected_split(f"{c1}:f1.py", 30)] * 2
    expected += [expected_split(c2, 30)]
    assert data.split.tolist() == expected
    assert 0 < sum(expected[:40]) < 40  # the files of one commit spread over both sides
    for i in data.val_indices():
        assert data.texts(int(i)) == (rows[i]["old_contents"], rows[i]["new_contents"])
    assert len(data.val_indices()) == data.meta["counts"]["val"]


def test_cache_hit_is_identical_fast_and_keyed_by_settings(tmp_path):
    rows = [row(i, words(4, i), words(9, 50 + i)) for i in range(120)]
    source = write(tmp_path / "r.jsonl", rows)
    cold = run(tmp_path, source)
    t0 = time.perf_counter()
    warm = run(tmp_path, source)
    assert time.perf_counter() - t0 < 1.0
    assert warm.path == cold.path and warm.meta == cold.meta
    for name in ("before", "after", "actions", "split", "trajectory"):
        np.testing.assert_array_equal(getattr(cold, name), getattr(warm, name))
    assert isinstance(warm.before, np.memmap)
    prepared_dir = tmp_path / "cache" / "prepared" / "words"
    assert [p.name for p in prepared_dir.iterdir()] == [cold.meta["cache_key"]]  # no temporary leftovers
    other = run(tmp_path, source, max_len=8)
    assert other.meta["cache_key"] != cold.meta["cache_key"] and other.before.shape == (120, 8)
    loaded = PreparedData.load(cold.path)
    assert loaded.ids == cold.ids and len(loaded) == 120
    # the source changed: a new key
    write(tmp_path / "r.jsonl", rows[:60])
    assert len(run(tmp_path, source)) == 60


def test_cache_is_written_atomically(tmp_path, monkeypatch):
    import wmkit.prepare as prep

    rows = [row(i, words(4, i), words(9, 50 + i)) for i in range(20)]
    source = write(tmp_path / "r.jsonl", rows)

    saved = []
    real_save = np.save

    def save_then_crash(path, array):
        if len(saved) == 3:
            raise KeyboardInterrupt  # dies half way through writing the arrays
        saved.append(path)
        real_save(path, array)

    monkeypatch.setattr(prep.np, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, source)
    prepared_dir = tmp_path / "cache" / "prepared" / "words"
    assert len(saved) == 3
    assert list(prepared_dir.iterdir()) == []  # neither a half-written cache nor a temporary directory
    monkeypatch.undo()
    assert len(run(tmp_path, source)) == 20


def test_nothing_left_after_filtering_is_an_error(tmp_path):
    source = write(tmp_path / "r.jsonl", [row(0, "", ""), row(1, "a\n", "b\n")])
    with pytest.raises(DataError) as err:
        run(tmp_path, source)
    message = str(err.value)
    assert "r.jsonl" in message and "blank=1" in message and "few_changed_tokens=1" in message
    assert "\n" not in message


def test_real_commits_val_file_with_limit(tmp_path):
    val = DATA / "val.jsonl.zst"
    if not val.is_file():
        pytest.skip("needs ../shared/data/commits-py/val.jsonl.zst (the real-data set beside the checkout)")
    from wmkit_code import tokenizer as tok
    from wmkit_code.domain import CodeDomain

    data = prepare(CodeDomain(), f"jsonl:{val}", max_len=128, limit=300, cache_dir=tmp_path, progress=False,
                   workers=2)
    assert len(data) == 300 and data.meta["counts"]["val"] == 300  # the file's split column says val
    assert data.actions.shape == (300, 15) and data.before.shape == (300, 128)
    assert int(data.before.max()) < tok.VOCAB_SIZE and (data.before[:, 0] == tok.BOS).all()
    assert set(np.unique(data.labels["edit_type"])) <= {0, 1, 2}
    assert len(set(data.ids)) == 300
    i = int(data.val_indices()[0])
    before, after = data.texts(i)
    assert tok.tokenize(before)[:128] == data.before[i][data.before[i] != tok.PAD].tolist()[:128]
    assert data.meta["vocab_version"] == "code-ast-1" and data.meta["domain"] == "code"


class PyOnly(Words):
    name = "pyonly"

    def accepts_file(self, path):
        return path.endswith(".py")


def test_rows_of_other_file_types_are_dropped_and_counted(tmp_path):
    rows = [row(i, words(4, i), words(9, 50 + i)) for i in range(6)]
    for r in rows[:2]:
        r["new_file"] = r["old_file"] = "kernel.cu"
    data = prepare(PyOnly(), write(tmp_path / "r.jsonl", rows), max_len=16, progress=False, workers=1,
                   cache_dir=tmp_path / "cache")
    assert len(data) == 4 and data.meta["counts"]["dropped"]["other_file_type"] == 2


def test_pairs_with_no_token_change_are_dropped_and_counted(tmp_path):
    same = "a b c d e f"
    rows = [row(0, same, same + " "),  # whitespace only: identical tokens
            row(1, same, "a bb xxx y z f"), row(2, same, "a b ccc dddd e f")]  # tokens are word lengths
    source = write(tmp_path / "r.jsonl", rows)
    default = run(tmp_path, source, min_changed_tokens=0)
    assert default.meta["counts"]["dropped"].get("no_token_change") == 1
    assert default.meta["counts"]["kept"] == 2
    assert all(not np.array_equal(b, a) for b, a in zip(default.before, default.after))
    kept = run(tmp_path, source, min_changed_tokens=0, keep_unchanged=True)
    assert kept.meta["counts"]["kept"] == 3 and "no_token_change" not in kept.meta["counts"]["dropped"]
    assert kept.meta["truncation"]["in_arrays"] == 1  # identical, though not because of the cut
    assert kept.meta["cache_key"] != default.meta["cache_key"]


def test_holdout_repos_are_split_off_whole(tmp_path):
    rows = [row(i, "a b c", "a bb ccc " + "d" * (i % 7 + 1), repos=("held/out" if i % 3 == 0 else "o/r"))
            for i in range(30)]
    source = write(tmp_path / "r.jsonl", rows)
    data = run(tmp_path, source, min_changed_tokens=0, holdout_repos=("held/out",))
    held = data.holdout_indices()
    assert len(held) == 10 and data.meta["counts"]["holdout"] == 10
    assert set(held).isdisjoint(data.train_indices()) and set(held).isdisjoint(data.val_indices())
    assert data.meta["counts"]["train"] + data.meta["counts"]["val"] == 20
    assert all(data.texts(int(i)) for i in held)  # texts kept for held-out rows (retrieval baselines)
    plain = run(tmp_path, source, min_changed_tokens=0)
    assert plain.meta["cache_key"] != data.meta["cache_key"] and len(plain.holdout_indices()) == 0
    with pytest.raises(DataError, match=r"data.holdout_repos: no/such not among the repositories of .* \(2: held/out, o/r\)"):
        run(tmp_path, source, min_changed_tokens=0, holdout_repos=("no/such",))


def test_cache_key_holds_the_python_version(tmp_path, monkeypatch):
    """Another interpreter (another grammar, so perhaps another AST vocabulary) prepares its own data."""
    import sys
    from collections import namedtuple

    import wmkit.data.cache as cache_module  # where the cache key reads the interpreter's version
    from wmkit.prepare import cache_key

    settings = dict(max_len=8, window="head", max_chars=100, min_changed_tokens=0, val_percent=10, limit=0)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert cache_key("d", "s", **settings) == cache_key("d", "s", python=here, **settings)
    assert cache_key("d", "s", python="3.10", **settings) != cache_key("d", "s", python="3.13", **settings)

    source = write(tmp_path / "r.jsonl", [row(i, words(4, i), words(9, 50 + i)) for i in range(40)])
    now = run(tmp_path, source)
    version = namedtuple("version_info", "major minor micro releaselevel serial")
    fake_sys = type(sys)("sys")
    fake_sys.version_info = version(sys.version_info.major, sys.version_info.minor + 1, 0, "final", 0)
    monkeypatch.setattr(cache_module, "sys", fake_sys)
    later = run(tmp_path, source)
    assert later.meta["cache_key"] != now.meta["cache_key"] and later.path != now.path
