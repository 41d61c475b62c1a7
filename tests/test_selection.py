"""Best checkpoint and early stopping by a discriminative probe criterion, never delta cos."""

import json

import pytest

from wmkit.errors import RecipeError
from wmkit.evaluation import SELECTION_CRITERIA, criterion_value

from test_train import toy_host, toy_recipe  # noqa: F401  (fixture)


def evals(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == "eval"]


def test_best_checkpoint_is_chosen_by_knn1_over_copy(toy_host, tmp_path):
    from wmkit.train import train

    result = train(toy_recipe(toy_host, "train.steps=9"), out=tmp_path / "r", host=toy_host, live=False)
    rows = evals(result.run_dir)
    assert rows and all(r["knn1_over_copy"] == pytest.approx(r["knn_at_1"] - r["copy_knn_at_1"]) for r in rows)
    best = max(rows, key=lambda r: r["knn1_over_copy"])  # first maximum wins (strictly greater replaces)
    index = json.loads((result.run_dir / "checkpoints" / "index.json").read_text())
    assert index["criterion"] == "knn1_over_copy"
    assert index["best"] == f"step-{best['step']}" and index["best_metric"] == pytest.approx(best["knn1_over_copy"])


def test_patience_stops_at_the_peak(toy_host, tmp_path):
    from wmkit.train import train

    recipe = toy_recipe(toy_host, "train.steps=60", "train.select=beats_copy", "train.patience=1",
                        "train.eval_every=1", "train.save_every=100")
    result = train(recipe, out=tmp_path / "r", host=toy_host, live=False)
    rows = evals(result.run_dir)
    values = [r["beats_copy"] for r in rows]
    # it stops at the first probe that does not beat the best so far
    first_stale = next(i for i in range(1, len(values)) if values[i] <= max(values[:i]))
    assert result.step == rows[first_stale]["step"] < 60 and result.stopped_early
    log = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "early_stop" and log[-1]["criterion"] == "beats_copy"
    index = json.loads((result.run_dir / "checkpoints" / "index.json").read_text())
    assert index["best"] == f"step-{rows[int(max(range(len(values[:first_stale])), key=values.__getitem__))]['step']}"


def test_unknown_criterion_and_a_probe_larger_than_the_split_are_refused(toy_host, tmp_path):
    from wmkit.train import train

    with pytest.raises(RecipeError, match="train.select: 'delta_cos' is not one of 'knn1_over_copy'"):
        toy_recipe(toy_host, "train.select=delta_cos")
    with pytest.raises(RecipeError, match=r"eval.probe_size: 5000 validation pairs .* but the data has only \d+; "
                                          r"lower eval.probe_size"):
        train(toy_recipe(toy_host, "eval.probe_size=5000"), out=tmp_path / "r", host=toy_host, live=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(KeyError, match="choices: knn1_over_copy"):
        criterion_value({}, "lift")
    assert "delta_cos" not in SELECTION_CRITERIA and "lift" not in SELECTION_CRITERIA
