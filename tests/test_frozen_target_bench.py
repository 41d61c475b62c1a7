"""bench/frozen_target_levers.py scores heads on a checkpoint's frozen targets beside copy and ridge."""

import importlib.util
import json
from pathlib import Path

import pytest

from test_recipes_smoke import SMOKE, python_edits
from wmkit.recipe import load_recipe
from wmkit.testing import write_commitpack_jsonl

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "frozen_target_levers.py"
REPOS = ("a/one", "b/two", "c/three")


def _bench():
    spec = importlib.util.spec_from_file_location("frozen_target_levers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from wmkit.plugins import PluginHost, reset_host
    from wmkit.train import train

    wmkit_host = PluginHost()
    reset_host(wmkit_host)

    tmp = tmp_path_factory.mktemp("frozen")
    rows = [{**row, "repos": REPOS[i % 3]} for i, row in enumerate(python_edits(90))]
    source = write_commitpack_jsonl(tmp / "edits.jsonl", rows)
    overrides = [*SMOKE, f'data.source="jsonl:{source}"', 'data.holdout_repos=["c/three"]']
    train(load_recipe("lever_linear_start", overrides=overrides, host=wmkit_host, environ={}),
          out=tmp / "run", host=wmkit_host, live=False)
    yield tmp / "run"
    reset_host(None)


def test_an_infonce_head_that_does_not_move_scores_as_the_ridge_fit_it_starts_from(run_dir, tmp_path, capsys):
    out = tmp_path / "frozen.json"
    assert _bench().main([str(run_dir), "--lr", "0", "--temperature", "0.01", "--steps", "4", "--report-every", "2",
                          "--batch", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for split in ("val", "holdout"):
        copy = report["copy"][split]
        # copy is target(before) itself: never strictly closer to target(after) than target(before) is
        assert copy["beats_copy"] == 0.0 and copy["n"] > 0
        assert 0 <= copy["misses_twins_found"] <= copy["misses"] <= copy["n"]
    assert [r["step"] for r in report["runs"]] == [2, 4]
    for row in report["runs"]:  # lr 0: the head stays at the ridge weights it was started from
        for split in ("val", "holdout"):
            assert row[split]["misses"] == report["ridge"][split]["misses"]
            assert row[split]["mse"] == pytest.approx(report["ridge"][split]["mse"], rel=1e-4)
    printed = capsys.readouterr().out
    assert "copy (nothing changes): val misses" in printed and "ridge (linear edit model): val misses" in printed


def test_tune_repos_validate_on_a_whole_training_repository_kept_out_of_the_fit(run_dir, tmp_path, capsys):
    out = tmp_path / "tuned.json"
    assert _bench().main([str(run_dir), "--head", "mlp", "--option", "init_steps=3", "--report-every", "3",
                          "--tune-repos", "b/two", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("validating on"))
    tuned, fitted = (int(w) for w in line.replace(";", " ").split() if w.isdigit())
    assert report["copy"]["val"]["n"] == tuned > 0  # every pair of b/two, the training probe's too
    assert report["fit"]["pairs"] == fitted  # the ridge warm start read only the other training repository
    from wmkit.checkpoint import load_checkpoint
    from wmkit.runtime import load_data

    _, prepared = load_data(load_checkpoint(run_dir).recipe, progress=False)
    train, val = len(prepared.train_indices()), len(prepared.val_indices())
    assert fitted < train and train < fitted + tuned <= train + val  # b/two left the fit, a/one stayed in
    assert report["options"]["init_steps"] == 3 and [r["step"] for r in report["rows"]] == [3]
    with pytest.raises(SystemExit, match="--tune-repos no/such: data.holdout_repos: no/such not among the "
                                         "repositories of .* name repositories exactly as its repos column does"):
        _bench().main([str(run_dir), "--tune-repos", "no/such"])
    # a repository held out already has no pair left to validate on
    with pytest.raises(SystemExit, match="--tune-repos c/three: no pair of the data is in these repositories"):
        _bench().main([str(run_dir), "--tune-repos", "c/three"])
