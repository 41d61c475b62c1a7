"""Edit search: ``wmkit index`` a git history, ``wmkit search`` it by commit, patch or files; bad input."""

import json
import subprocess

import numpy as np
import pytest

from wmkit.testing import write_commitpack_jsonl

TINY = ["--set", "train.steps=2", "--set", "optim.batch_size=4", "--set", "eval.probe_size=0", "--set",
        "data.max_len=32", "--set", "data.min_changed_tokens=0", "--set", "data.val_percent=30",
        "--set", "train.threads=1", "--set", "model.dim=32", "--set", "model.heads=2"]

BEFORE = "def area(w, h):\n    return w * h\n"
AFTER = "def area(w, h, scale=1):\n    return w * h * scale\n"


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
                          ).stdout.strip()


def commit(repo, files, message):
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def one_line_error(result, *needles):
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny code models (seeds 0 and 1) trained two steps on synthetic edits."""
    from click.testing import CliRunner

    from wmkit.cli import cli
    from wmkit.plugins import reset_host

    root = tmp_path_factory.mktemp("models")
    edits = [{"old_contents": f"x = {i}\n", "new_contents": f"x = {i}\ny = x * {i}\n", "new_file": f"m{i}.py"}
             for i in range(30)]
    data = write_commitpack_jsonl(root / "e.jsonl", edits)
    runs = []
    for seed in (0, 1):
        reset_host(None)
        run = root / f"run{seed}"
        result = CliRunner().invoke(cli, ["train", "recipes/quickstart.toml", "--data", f"jsonl:{data}", "--out",
                                          str(run), "--no-live", "--set", f"meta.seed={seed}", *TINY],
                                     catch_exceptions=False)
        assert result.exit_code == 0, result.output
        runs.append(run)
    reset_host(None)
    return runs


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "proj"
    r.mkdir()
    git(r, "init", "-q")
    shas = {"add": commit(r, {"a.py": BEFORE, "b.py": "import os\n\nprint(os.sep)\n"}, "add a and b")}
    shas["edit"] = commit(r, {"a.py": AFTER}, "area takes a scale")
    shas["other"] = commit(r, {"b.py": "import os\nimport sys\n\nprint(os.sep, sys.argv)\n"}, "print argv")
    shas["revert"] = commit(r, {"a.py": BEFORE}, "revert the scale")
    return r, shas


def test_index_then_search_finds_the_identical_edit_first(wmkit_cli, models, repo, tmp_path):
    path, shas = repo
    index = tmp_path / "idx"
    result = wmkit_cli("index", f"git:{path}", "--model", str(models[0]), "--out", str(index), "--no-progress")
    assert result.exit_code == 0, result.output
    meta = json.loads((index / "index.json").read_text())
    rows = json.loads((index / "rows.json").read_text())
    assert meta["domain"] == "code" and meta["count"] == len(rows) and meta["commits"] == 4
    assert {r["commit"] for r in rows} == set(shas.values())
    assert all(r["date"] and r["subject"] for r in rows)

    # a patch of the same edit as "edit", against the working tree (a.py is BEFORE again)
    (path / "a.py").write_text(AFTER)
    patch = tmp_path / "same.patch"
    patch.write_text(subprocess.run(["git", "-C", str(path), "diff"], capture_output=True, text=True).stdout)
    git(path, "checkout", "--", "a.py")
    result = wmkit_cli("search", str(index), "--diff", str(patch), "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    top = found["queries"][0]["results"][0]
    assert top["commit"] == shas["edit"] and top["file"] == "a.py" and top["rank"] == 1
    assert top["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert "+    return w * h * scale" in top["excerpt"]
    assert len(found["queries"][0]["results"]) == 3

    # the same edit as two files, and as a later commit of another file (its own commit is left out)
    (tmp_path / "before.py").write_text(BEFORE)
    (tmp_path / "after.py").write_text(AFTER)
    result = wmkit_cli("search", str(index), "--before", str(tmp_path / "before.py"), "--after",
                       str(tmp_path / "after.py"), "--json")
    assert json.loads(result.output)["queries"][0]["results"][0]["commit"] == shas["edit"]
    again = commit(path, {"c.py": BEFORE}, "add c")
    again = commit(path, {"c.py": AFTER}, "c takes a scale too")
    result = wmkit_cli("search", str(index), "--commit", again[:12], "-k", "2")
    assert result.exit_code == 0, result.output
    first = [line for line in result.output.splitlines() if line.strip().startswith("1  ")][0]
    assert shas["edit"][:10] in first and "area takes a scale" in first

    # the similarity is the cosine of the edit embeddings, computed independently
    from wmkit.edit_index import load_model
    from wmkit.encode import edit_embedding
    from wmkit.plugins import get_host
    from wmkit.prepare import tokenize_rows
    from wmkit.runtime import make_domain

    im = load_model(models[0])
    domain = make_domain(im.recipe, get_host())
    other = "def area(w, h):\n    return h * w\n"
    rows_in = [{"old_contents": BEFORE, "new_contents": AFTER}, {"old_contents": BEFORE, "new_contents": other}]
    data = im.recipe["data"]
    _, b, a, _ = tokenize_rows(domain, rows_in, max_len=data["max_len"], window=data["window"],
                               min_changed_tokens=data["min_changed_tokens"])
    v = edit_embedding(im.model, b, a)
    cos = float(v[0] @ v[1] / np.linalg.norm(v[0]) / np.linalg.norm(v[1]))
    (tmp_path / "other.py").write_text(other)
    result = json.loads(wmkit_cli("search", str(index), "--before", str(tmp_path / "before.py"), "--after",
                                  str(tmp_path / "other.py"), "-k", "50", "--json").output)
    sims = {(h["commit"], h["file"]): h["similarity"] for h in result["queries"][0]["results"]}
    assert sims[(shas["edit"], "a.py")] == pytest.approx(cos, abs=1e-4)


def test_update_adds_only_new_commits(wmkit_cli, models, repo, tmp_path):
    path, shas = repo
    index = tmp_path / "idx"
    args = ["index", f"git:{path}", "--model", str(models[0]), "--out", str(index), "--no-progress"]
    assert wmkit_cli(*args).exit_code == 0
    rows = json.loads((index / "rows.json").read_text())
    from wmkit.search import load_index

    old_vecs = load_index(index / "index.faiss").reconstruct_n(0, len(rows))
    new = commit(path, {"b.py": "import os\nimport sys\n\nprint(os.sep, sys.argv[1:])\n"}, "skip argv0")
    result = wmkit_cli(*args, "--update")
    assert result.exit_code == 0, result.output
    after = json.loads((index / "rows.json").read_text())
    assert after[:len(rows)] == rows and [r["commit"] for r in after[len(rows):]] == [new]
    vecs = load_index(index / "index.faiss").reconstruct_n(0, len(after))
    np.testing.assert_array_equal(vecs[:len(rows)], old_vecs)
    assert json.loads((index / "index.json").read_text())["count"] == len(after)
    assert wmkit_cli(*args, "--update").exit_code == 0  # nothing new: nothing added
    assert json.loads((index / "rows.json").read_text()) == after


def test_bad_input_is_one_line_and_overwrites_nothing(wmkit_cli, models, repo, tmp_path):
    path, shas = repo
    index = tmp_path / "idx"
    args = ["index", f"git:{path}", "--model", str(models[0]), "--out", str(index), "--no-progress"]
    assert wmkit_cli(*args).exit_code == 0
    snapshot = {p.name: p.read_bytes() for p in index.iterdir()}

    one_line_error(wmkit_cli(*args), "--out", "already exists", "--update", "--force")
    one_line_error(wmkit_cli("search", str(index), "--commit", "0123456789abcdef"), "--commit 0123456789abcdef",
                   "not a commit")
    bad = tmp_path / "bad.patch"
    bad.write_text("--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n-def nothing_like_this():\n-    pass\n"
                   "+def other():\n+    pass\n")
    one_line_error(wmkit_cli("search", str(index), "--diff", str(bad)), "--diff", "bad.patch", "does not apply")
    # another model (same domain, other weights), on search and on --update
    one_line_error(wmkit_cli("search", str(index), "--commit", shas["edit"], "--model", str(models[1])),
                   str(models[1]), "weights")
    one_line_error(wmkit_cli("index", f"git:{path}", "--model", str(models[1]), "--out", str(index), "--update",
                             "--no-progress"), str(models[1]))
    assert snapshot == {p.name: p.read_bytes() for p in index.iterdir()}
    # another domain than the query model's
    meta = json.loads(snapshot["index.json"])
    (index / "index.json").write_text(json.dumps({**meta, "domain": "kernel"}))
    one_line_error(wmkit_cli("search", str(index), "--commit", shas["edit"]), "'kernel'", "'code'")
    one_line_error(wmkit_cli("search", str(tmp_path), "--commit", shas["edit"]), "not an edit index")


def test_an_export_indexes_like_its_run(wmkit_cli, models, repo, tmp_path):
    path, shas = repo
    out = tmp_path / "export"
    result = wmkit_cli("export", str(models[0]), str(out), "--no-audit")
    assert result.exit_code == 0, result.output
    for name, model in (("from_run", models[0]), ("from_export", out)):
        result = wmkit_cli("index", f"git:{path}", "--model", str(model), "--out", str(tmp_path / name),
                           "--no-progress")
        assert result.exit_code == 0, result.output
    run_meta, export_meta = (json.loads((tmp_path / n / "index.json").read_text()) for n in ("from_run", "from_export"))
    # the same weights: the export's index is the run's, and a query against one is valid for the other
    assert export_meta["model"]["identity"] == run_meta["model"]["identity"]
    assert (tmp_path / "from_run" / "rows.json").read_text() == (tmp_path / "from_export" / "rows.json").read_text()
    result = wmkit_cli("search", str(tmp_path / "from_export"), "--commit", shas["edit"][:12], "-k", "1", "--json")
    assert result.exit_code == 0, result.output
