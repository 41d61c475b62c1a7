"""The Python facade (``wmkit.load_recipe``, ``wmkit.train``, ...), docs/python.md, shell completion."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import wmkit
from wmkit.api import override_strings

REPO = Path(__file__).resolve().parents[1]


def test_import_wmkit_stays_light_and_lists_the_facade():
    code = ("import sys, wmkit; names = dir(wmkit); "
            "assert {'load_recipe', 'train', 'audit', 'sweep', 'export', 'load'} <= set(names), names; "
            "print(','.join(m for m in ('torch', 'datasets', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_modules_named_like_facade_functions_stay_modules_and_are_callable():
    import wmkit.audit as audit_module
    import wmkit.train as train_module

    assert wmkit.train is train_module and callable(wmkit.train)
    assert wmkit.audit is audit_module and callable(wmkit.audit)
    assert train_module.train.__module__ == "wmkit.train"  # the training loop, untouched
    assert wmkit.load.__module__ == "wmkit.api"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        wmkit.nope  # noqa: B018


def test_override_strings_from_dicts_and_strings():
    assert override_strings({"a.b": 1, "c": {"d": "x", "e": [1, 2], "f": True}}) == [
        "a.b=1", 'c.d="x"', "c.e=[1, 2]", "c.f=true"]
    assert override_strings(["a.b=1"]) == ["a.b=1"] and override_strings(None) == []
    with pytest.raises(wmkit.errors.RecipeError, match="a.b = None"):
        override_strings({"a": {"b": None}})


def test_load_recipe_dict_overrides_equal_set_strings(wmkit_host):
    as_dict = wmkit.load_recipe("loops3", {"train": {"steps": 7}, "model.dim": 64, "data.source": "jsonl:x.jsonl"},
                                host=wmkit_host)
    as_strings = wmkit.load_recipe("loops3", ["train.steps=7", "model.dim=64", 'data.source="jsonl:x.jsonl"'],
                                   host=wmkit_host)
    assert as_dict.values == as_strings.values
    assert as_dict.get("train.steps") == 7 and as_dict.get("data.source") == "jsonl:x.jsonl"
    with pytest.raises(wmkit.errors.RecipeError, match="train.steps"):
        wmkit.load_recipe("loops3", {"train.steps": "many"}, host=wmkit_host)


def test_run_result_metrics_frame_and_list(tmp_path, monkeypatch):
    from wmkit.train import RunResult

    rows = [{"step": 1, "loss": 2.0, "pred": 1.0}, {"event": "eval", "step": 1, "knn_at_1": 0.5},
            {"step": 2, "loss": 1.5, "pred": 0.8}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "lo')
    result = RunResult(run_dir=tmp_path, step=2, stopped_early=False)
    frame = result.metrics()
    pytest.importorskip("pandas")
    assert list(frame["loss"]) == [2.0, 1.5] and list(frame["step"]) == [1, 2]
    assert list(result.metrics("eval")["knn_at_1"]) == [0.5]
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    assert result.metrics() == [rows[0], rows[2]]
    with pytest.raises(wmkit.errors.WmkitError, match="choose one of"):
        result.metrics("steps")


def test_recipe_completion_offers_shipped_names():
    from wmkit.cli import cli, complete_recipe
    from wmkit.recipe import shipped_recipes

    names = [item.value for item in complete_recipe(None, None, "loops") if item.type == "plain"]
    assert names == sorted(n for n in shipped_recipes() if n.startswith("loops")) and "loops3" in names
    # through click's own completion protocol, as the shell calls it
    env = {"_WMKIT_COMPLETE": "bash_complete", "COMP_WORDS": "wmkit train loo", "COMP_CWORD": "2"}
    out = CliRunner().invoke(cli, [], env=env, prog_name="wmkit")
    assert "plain,loops3\n" in out.output and "plain,loops3_auxpred_vicreg\n" in out.output


def test_python_m_wmkit():
    out = subprocess.run([sys.executable, "-m", "wmkit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"wmkit, version {wmkit.__version__}"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown page (not ```python no-test)."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.slow
def test_python_md_runs(tmp_path, monkeypatch, wmkit_host):
    """docs/python.md's code blocks run, in order, in one namespace (a notebook)."""
    blocks = python_blocks((REPO / "docs" / "python.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__python_md__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/python.md block {i + 1}", "exec"), namespace)
    assert (tmp_path / "exports" / "notebook" / "README.md").exists()
    assert namespace["result"]["verdict"] in (tmp_path / "exports" / "notebook" / "README.md").read_text()


def test_train_applies_overrides_to_a_resolved_recipe(wmkit_host, monkeypatch, tmp_path):
    import wmkit.train as train_module

    seen = {}
    monkeypatch.setattr(train_module, "train", lambda recipe, **kw: seen.update(recipe=recipe, **kw) or "done")
    recipe = wmkit.load_recipe("loops3", {"train.steps": 7}, host=wmkit_host)
    assert wmkit.train(recipe, {"train.steps": 3}, data="jsonl:x.jsonl", out=tmp_path / "r", host=wmkit_host) == "done"
    got = seen["recipe"]
    assert got.get("train.steps") == 3 and got.get("data.source") == "jsonl:x.jsonl"
    assert got.overrides == ["train.steps=7", "train.steps=3", 'data.source="jsonl:x.jsonl"']
    assert recipe.get("train.steps") == 7 and seen["out"] == tmp_path / "r"  # the caller's recipe is untouched
