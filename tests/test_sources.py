"""Data sources: local files (json lines, gzip, zstd, parquet), the hub offline, git histories, errors."""

import gzip
import json
import os
import subprocess
import time

import pytest

from wmkit.errors import DataError
from wmkit.sources import open_rows, source_fingerprint

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROWS = [
    {"commit": "c1", "old_file": "a.py", "new_file": "a.py", "old_contents": "x = 1\n", "new_contents": "x = 2\n",
     "subject": "s", "message": "m", "lang": "Python", "license": "mit", "repos": "o/r", "split": "train"},
    {"commit": "c2", "old_file": "b.py", "new_file": "b.py", "old_contents": "", "new_contents": "y = 1\n",
     "subject": "s2", "message": "m2", "lang": "Python", "license": "mit", "repos": "o/r", "split": "val"},
]


def write_jsonl(path, rows, opener=open):
    with opener(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def write_zst(path, rows):
    import zstandard

    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return path


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def strip(rows):
    return [{k: r[k] for k in ROWS[0]} for r in rows]


@pytest.mark.parametrize("kind", ["jsonl", "gz", "zst", "parquet"])
def test_local_formats_yield_the_rows(tmp_path, kind):
    writers = {"jsonl": lambda p: write_jsonl(p, ROWS), "gz": lambda p: write_jsonl(p, ROWS, gzip.open),
               "zst": lambda p: write_zst(p, ROWS), "parquet": lambda p: write_parquet(p, ROWS)}
    name = {"jsonl": "d.jsonl", "gz": "d.jsonl.gz", "zst": "d.jsonl.zst", "parquet": "d.parquet"}[kind]
    path = writers[kind](tmp_path / name)
    assert strip(open_rows(str(path))) == ROWS  # a bare path
    scheme = "parquet" if kind == "parquet" else "jsonl"
    assert strip(open_rows(f"{scheme}:{path}")) == ROWS


def test_several_files_a_directory_and_defaults_for_optional_columns(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", ROWS[:1])
    b = write_jsonl(tmp_path / "b.jsonl", [{"old_contents": "p = 1\n", "new_contents": "p = 2\n"}])
    rows = list(open_rows(f"jsonl:{a},{b}"))
    assert [r["old_contents"] for r in rows] == ["x = 1\n", "p = 1\n"]
    assert rows[1]["commit"] == "" and rows[1]["repos"] == "" and "split" not in rows[1]
    assert [r["new_contents"] for r in open_rows(str(tmp_path))] == ["x = 2\n", "p = 2\n"]


def test_missing_columns_are_named(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"commit": "c", "before": "x", "after": "y"}])
    with pytest.raises(DataError) as err:
        list(open_rows(f"jsonl:{path}"))
    message = str(err.value)
    assert "old_contents" in message and "new_contents" in message and str(path) in message
    assert "\n" not in message


def test_corrupt_zstd_files_are_named(tmp_path):
    garbage = tmp_path / "garbage.jsonl.zst"
    garbage.write_bytes(b"this is not zstd at all")
    with pytest.raises(DataError, match="garbage.jsonl.zst"):
        list(open_rows(str(garbage)))
    good = write_zst(tmp_path / "good.jsonl.zst", ROWS * 200)
    truncated = tmp_path / "truncated.jsonl.zst"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.jsonl.zst") as err:
        list(open_rows(str(truncated)))
    assert "corrupt" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_a_first_row_that_is_not_an_object_is_refused_not_crashed_on(tmp_path, suffix):
    import zstandard

    # datasets' JSON reader kills the process on a first line of null; the file is refused before it
    payload = ("\n  \nnull\n" + json.dumps(ROWS[0]) + "\n").encode()
    path = tmp_path / f"rows{suffix}"
    path.write_bytes({".jsonl": payload, ".jsonl.gz": gzip.compress(payload),
                      ".jsonl.zst": zstandard.ZstdCompressor().compress(payload)}[suffix])
    with pytest.raises(DataError) as err:
        list(open_rows(str(path)))
    assert str(err.value) == (f"{path}: the first row is null, not an object with CommitPackFT columns; each line "
                              f"must be one JSON object with old_contents and new_contents")
    plain = write_jsonl(tmp_path / "plain.jsonl", [[1, 2], ROWS[0]])
    with pytest.raises(DataError, match=r"plain.jsonl: the first row is \[1, 2\], not an object"):
        list(open_rows(str(plain)))
    # a .json file may hold one array of rows, and still reads
    array = tmp_path / "rows.json"
    array.write_text(json.dumps([ROWS[0]] * 3))
    assert [r["old_contents"] for r in open_rows(f"jsonl:{array}")] == [ROWS[0]["old_contents"]] * 3


def test_missing_path_and_unknown_scheme(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_rows(f"jsonl:{tmp_path / 'nope.jsonl'}")
    with pytest.raises(DataError, match="does not exist"):
        open_rows(str(tmp_path / "nope.jsonl.zst"))
    with pytest.raises(DataError) as err:
        open_rows("s3:bucket/key")
    assert all(s in str(err.value) for s in ("jsonl:", "parquet:", "hf:", "git:"))


def test_hub_offline_fails_fast_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        list(open_rows("hf:bigcode/commitpackft/python"))
    assert time.perf_counter() - t0 < 5
    message = str(err.value)
    assert "\n" not in message and "bigcode/commitpackft" in message and "--data jsonl:" in message
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hub-cache"))
    assert source_fingerprint("hf:bigcode/commitpackft/python") == "hf:bigcode/commitpackft/python@unresolved:main"


def test_hf_fingerprint_holds_the_revision_knowable_offline(monkeypatch, tmp_path):
    """Offline: a commit asked for is used as it is; a branch or tag is the commit of the local snapshot's
    ref; without one, the requested revision marked unresolved. Each gives another cache key."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    sha, tag_sha = "a" * 40, "0123456789abcdef0123456789abcdef01234567"
    assert source_fingerprint(f"hf:bigcode/commitpackft/python@{sha}") == f"hf:bigcode/commitpackft/python@{sha}"
    assert source_fingerprint("hf:org/data@v1.0") == "hf:org/data@unresolved:v1.0"
    refs = tmp_path / "hub" / "datasets--org--data" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(sha)
    (refs / "v1.0").write_text(tag_sha + "\n")
    assert source_fingerprint("hf:org/data") == f"hf:org/data@{sha}"
    assert source_fingerprint("hf:org/data/cfg@v1.0") == f"hf:org/data/cfg@{tag_sha}"
    (refs / "main").write_text("not a commit")
    assert source_fingerprint("hf:org/data") == "hf:org/data@unresolved:main"


def test_domain_rows_take_precedence():
    class Own:
        def rows(self, source):
            return iter([{"old_contents": "a", "new_contents": "b"}]) if source == "mine:" else None

        def source_fingerprint(self, source):
            return "mine-v1" if source == "mine:" else None

    rows = list(open_rows("mine:", domain=Own()))
    assert rows[0]["new_contents"] == "b" and rows[0]["commit"] == ""
    assert source_fingerprint("mine:", domain=Own()) == "mine-v1"


def test_file_fingerprint_tracks_changes(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", ROWS)
    first = source_fingerprint(f"jsonl:{path}")
    assert first == source_fingerprint(str(path))  # same file, same fingerprint
    write_jsonl(path, ROWS + ROWS)
    assert source_fingerprint(str(path)) != first


# -- git -------------------------------------------------------------------------------------------
class Py:
    """A domain that keeps .py files and drops texts containing 'SKIPME'."""

    def rows(self, source):
        return None

    def source_fingerprint(self, source):
        return None

    def accepts_file(self, path):
        return path.endswith(".py")

    def accepts_text(self, path, old, new):
        return "SKIPME" not in new


def git(repo, *args, when=None):
    env = dict(os.environ)
    if when is not None:
        env.update(GIT_AUTHOR_DATE=f"{when} +0000", GIT_COMMITTER_DATE=f"{when} +0000")
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main",
                           "-c", "commit.gpgsign=false", *args], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "proj"
    r.mkdir()
    git(r, "init", "-q")

    def commit(files, message, when, remove=(), move=None):
        if move:
            git(r, "mv", *move)
        for name, text in files.items():
            (r / name).write_text(text)
        for name in remove:
            git(r, "rm", "-q", name)
        git(r, "add", "-A")
        git(r, "commit", "-q", "-m", message, when=when)
        return git(r, "rev-parse", "HEAD")

    shas = {}
    shas["c1"] = commit({"a.py": "x = 1\n", "notes.txt": "hi\n"}, "add a\n\nbody", 1_700_000_000)
    shas["c2"] = commit({"a.py": "x = 2\n", "b.py": "y = 1\n"}, "edit a, add b", 1_700_000_100)
    shas["c3"] = commit({"b.py": "y = 2  # SKIPME\n"}, "skipped edit", 1_700_000_200)
    shas["c4"] = commit({"c.py": "x = 2\nz = 3\n"}, "rename a to c", 1_700_000_300, move=("a.py", "c.py"))
    shas["c5"] = commit({}, "delete b", 1_700_000_400, remove=("b.py",))
    return r, shas


def test_git_history_is_mined_per_file_in_order(repo):
    path, shas = repo
    rows = list(open_rows(f"git:{path}", domain=Py()))
    got = [(r["commit"], r["old_file"], r["new_file"], r["old_contents"], r["new_contents"]) for r in rows]
    assert got == [
        (shas["c1"], "a.py", "a.py", "", "x = 1\n"),          # A: old side blank
        (shas["c2"], "a.py", "a.py", "x = 1\n", "x = 2\n"),   # M
        (shas["c2"], "b.py", "b.py", "", "y = 1\n"),          # A (c3's edit of b.py rejected by accepts_text)
        (shas["c4"], "a.py", "c.py", "x = 2\n", "x = 2\nz = 3\n"),  # R with an edit
    ]
    assert {r["repos"] for r in rows} == {"proj"} and all("split" not in r for r in rows)
    assert rows[0]["subject"] == "add a" and rows[0]["message"] == "add a\n\nbody"
    # at a revision: only the history up to it
    early = list(open_rows(f"git:{path}@{shas['c2']}", domain=Py()))
    assert [r["commit"] for r in early] == [shas["c1"], shas["c2"], shas["c2"]]
    assert source_fingerprint(f"git:{path}@{shas['c2']}") == f"git:{path}@{shas['c2']}"
    assert source_fingerprint(f"git:{path}") == f"git:{path}@{shas['c5']}"


def test_git_merges_are_skipped(repo):
    path, shas = repo
    git(path, "checkout", "-q", "-b", "side", shas["c4"])
    (path / "d.py").write_text("d = 1\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "side", when=1_700_000_500)
    git(path, "checkout", "-q", "main")
    git(path, "merge", "-q", "--no-ff", "-m", "merge side", "side", when=1_700_000_600)
    rows = list(open_rows(f"git:{path}", domain=Py()))
    merge = git(path, "rev-parse", "HEAD")
    assert merge not in {r["commit"] for r in rows}
    assert [r["new_file"] for r in rows].count("d.py") == 1


def test_git_errors_are_one_line(tmp_path, repo):
    path, _ = repo
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(DataError, match="not a git repository"):
        open_rows(f"git:{plain}")
    with pytest.raises(DataError, match="no-such-rev"):
        open_rows(f"git:{path}@no-such-rev")
    with pytest.raises(DataError, match="no such directory"):
        open_rows(f"git:{tmp_path / 'missing'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(DataError, match="HEAD"):
        open_rows(f"git:{empty}")


def test_directory_source_ignores_plain_json_metadata(tmp_path):
    import json as _json

    from wmkit.sources import open_rows

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "manifest.json").write_text(_json.dumps({"rows": 1}))
    row = {"commit": "a" * 40, "old_file": "f.py", "new_file": "f.py", "old_contents": "x = 1\n",
           "new_contents": "x = 2\n", "subject": "s", "message": "m", "lang": "Python", "license": "mit",
           "repos": "o/r"}
    (folder / "train.jsonl").write_text(_json.dumps(row) + "\n")
    rows = list(open_rows(f"jsonl:{folder}"))
    assert [r["commit"] for r in rows] == ["a" * 40]
