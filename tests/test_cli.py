"""The command line: help, recipe inspection, and bad input as one line with a non-zero exit."""

import gzip
import json

import pytest

from wmkit.testing import write_commitpack_jsonl

TINY = ["--set", "train.steps=2", "--set", "optim.batch_size=4", "--set", "eval.probe_size=0", "--set",
        "data.max_len=32", "--set", "data.min_changed_tokens=0", "--set", "data.val_percent=30",
        "--set", "train.threads=1", "--set", "model.dim=32", "--set", "model.heads=2",
        "--set", "eval.final_audit=false"]


def edits(n=30):
    return [{"old_contents": f"x = {i}\n", "new_contents": f"x = {i}\ny = x * {i}\n", "new_file": f"m{i}.py"}
            for i in range(n)]


def one_line_error(result, *needles):
    assert result.exit_code != 0
    out = result.output.strip()
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_help_lists_the_main_commands(wmkit_cli):
    result = wmkit_cli("--help")
    assert result.exit_code == 0
    for command in ("train", "audit", "plugins", "recipes", "compare", "bench"):
        assert command in result.output


def test_recipe_show_with_override(wmkit_cli):
    result = wmkit_cli("recipe", "show", "recipes/loops3_auxpred_vicreg.toml", "--set", "model.encoder.loops=4")
    assert result.exit_code == 0
    section = result.output.split("[model.encoder]")[1].split("[")[0]
    assert "loops = 4" in section


def test_recipe_show_unknown_key_exits_2(wmkit_cli):
    result = wmkit_cli("recipe", "show", "recipes/loops3_auxpred_vicreg.toml", "--set", "model.encodr.loops=4")
    assert result.exit_code == 2
    one_line_error(result, "model.encodr", "model.encoder")


def test_unknown_domain_lists_available(wmkit_cli):
    result = wmkit_cli("train", "--domain", "cobol")
    one_line_error(result, "cobol", "code", "kernel")


def test_plugins_json_lists_builtins(wmkit_cli):
    rows = json.loads(wmkit_cli("plugins", "--json").output)
    assert all({"name", "kind", "plugin", "version", "status", "error"} <= set(r) for r in rows)
    kinds = {(r["kind"], r["name"]) for r in rows if r["status"] == "ok"}
    assert {("domain", "code"), ("domain", "kernel"), ("regularizer", "vicreg"), ("regularizer", "sigreg")} <= kinds


@pytest.mark.parametrize("case", ["missing", "corrupt", "columns", "not_git", "empty"])
def test_bad_data_is_one_line_and_leaves_no_run(case, wmkit_cli, tmp_path):
    if case == "missing":
        source, needle = f"jsonl:{tmp_path / 'nope.jsonl'}", "nope.jsonl"
    elif case == "corrupt":
        path = tmp_path / "bad.jsonl.gz"
        path.write_bytes(gzip.compress(b'{"old_contents": "x"}\n' * 50)[:40])
        source, needle = f"jsonl:{path}", "bad.jsonl.gz"
    elif case == "columns":
        path = tmp_path / "cols.jsonl"
        path.write_text(json.dumps({"commit": "a", "old_contents": "x = 1\n"}) + "\n")
        source, needle = f"jsonl:{path}", "new_contents"
    elif case == "not_git":
        source, needle = f"git:{tmp_path}", str(tmp_path)
    else:
        path = write_commitpack_jsonl(tmp_path / "same.jsonl", [{"old_contents": "", "new_contents": ""}] * 3)
        source, needle = f"jsonl:{path}", "no rows left"
    result = wmkit_cli("train", "recipes/quickstart.toml", "--data", source, "--out", str(tmp_path / "run"), *TINY)
    one_line_error(result, needle)
    assert not (tmp_path / "run").exists()


def test_existing_run_untouched_on_conflicts(wmkit_cli, tmp_path):
    data = write_commitpack_jsonl(tmp_path / "e.jsonl", edits())
    run = tmp_path / "run"
    args = ["train", "recipes/quickstart.toml", "--data", f"jsonl:{data}", "--out", str(run), *TINY]
    assert wmkit_cli(*args).exit_code == 0
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    one_line_error(wmkit_cli(*args), "already holds a run", "--resume", "--force")
    one_line_error(wmkit_cli(*args[:-2], "--set", "model.heads=4", "--resume", str(run)), "model.heads")
    one_line_error(wmkit_cli("train", "recipes/quickstart.toml", "--data", f"jsonl:{tmp_path / 'gone.jsonl'}",
                             "--out", str(run), "--force", *TINY), "gone.jsonl")
    assert snapshot == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_final_audit_prints_the_verdict_beside_its_baselines_and_what_next(wmkit_cli, tmp_path):
    data = write_commitpack_jsonl(tmp_path / "e.jsonl", edits())
    run = tmp_path / "run"
    result = wmkit_cli("train", "recipes/quickstart.toml", "--data", f"jsonl:{data}", "--out", str(run), "--no-live",
                       *TINY[:-2])  # the quickstart's own eval.final_audit = true
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "audit.json").read_text())
    out = result.output
    assert "verdict: " + saved["verdict"] in out
    copy, linear = saved["copy_knn_at_k"], saved["linear_edit_knn_at_k"]
    assert (f"KNN@1: model {100 * saved['knn_at_1']:.2f}% | copy {100 * copy['1']:.2f}% | linear edit "
            f"{100 * linear['1']:.2f}% | random {100 * saved['random_knn_at_1']:.2f}%") in out
    assert f"on all {saved['gallery_size']} validation pairs" in out
    for command in (f"wmkit audit {run} --geometry", f"wmkit audit {run} --html audit.html",
                    "wmkit sweep recipes/quickstart.toml --grid"):
        assert command in out, command
    quiet = wmkit_cli("train", "recipes/quickstart.toml", "--data", f"jsonl:{data}", "--out", str(tmp_path / "r2"),
                      "--no-live", *TINY)
    assert quiet.exit_code == 0 and "verdict:" not in quiet.output and not (tmp_path / "r2" / "audit.json").exists()


def test_truncated_checkpoint_fails_audit_with_one_line(wmkit_cli, tmp_path):
    data = write_commitpack_jsonl(tmp_path / "e.jsonl", edits())
    run = tmp_path / "run"
    assert wmkit_cli("train", "recipes/quickstart.toml", "--data", f"jsonl:{data}", "--out", str(run), *TINY).exit_code == 0
    weights = run / "checkpoints" / "step-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    one_line_error(wmkit_cli("audit", str(run)), "model.safetensors")
