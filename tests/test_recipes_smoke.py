"""Every shipped recipe trains (two steps, tiny inputs) with its own model and losses."""

import json

import pytest

from wmkit.recipe import load_recipe, shipped_recipes
from wmkit.testing import write_commitpack_jsonl

SMOKE = ["train.steps=2", "train.eval_every=1", "train.save_every=2", "train.threads=1", "optim.batch_size=4",
         "optim.warmup_steps=1", "eval.probe_size=0", "data.max_len=32", "data.min_changed_tokens=0",
         "data.val_percent=30"]


def python_edits(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        old = f"def f{i}(x):\n    return x + {i}\n"
        new = old + f"\n\nclass C{i}:\n    def g(self, y):\n        return y * {i}\n"
        rows.append({"old_contents": old, "new_contents": new, "new_file": f"m{i}.py"})
    return rows


@pytest.mark.parametrize("name", sorted(shipped_recipes()))
def test_shipped_recipe_trains(name, tmp_path, wmkit_host):
    from wmkit.train import train

    recipe = load_recipe(name, host=wmkit_host, environ={})
    overrides = list(SMOKE)
    if recipe.get("data.domain") == "code":
        source = write_commitpack_jsonl(tmp_path / "edits.jsonl", python_edits(40))
        overrides.append(f'data.source="jsonl:{source}"')
    else:
        overrides.append("data.embedded_pairs=40")
    recipe = load_recipe(name, overrides=overrides, host=wmkit_host, environ={})
    result = train(recipe, out=tmp_path / "run", host=wmkit_host, live=False)
    assert result.step == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "event" not in r]
    assert len(losses) == 2 and all(l == l for l in losses)  # finite, not NaN
    assert (tmp_path / "run" / "checkpoints" / "step-2" / "model.safetensors").exists()
