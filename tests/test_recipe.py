"""Recipes: validation with dotted paths and suggestions, overrides, environment, TOML round trip."""

import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from wmkit.errors import RecipeError
from wmkit.recipe import ENV_VARS, dump_toml, load_recipe, parse_override, shipped_recipes

PAPER = "loops3_auxpred_vicreg"


def test_paper_recipe_has_table_11_values(wmkit_host):
    r = load_recipe(PAPER, host=wmkit_host, environ={})
    assert r.get("model.encoder.loops") == 3
    assert r.get("loss.aux.name") == "pred"
    assert r.get("loss.aux.loops") == [1, 2]
    assert r.get("loss.aux.weight") == 0.3
    assert r.get("regularizer.name") == "vicreg"
    assert r.get("regularizer.weight") == 0.1
    assert r.get("model.target.ema_decay") == 0.99999
    # plugin-contributed options are present with their defaults
    assert r.get("model.predictor.blocks") == 2
    assert r.get("model.predictor.loops") == 6


def test_set_override_is_typed_and_wins_over_environment(wmkit_host):
    env = {"WM_ENCODER_LOOPS": "5", "WM_AUX_LOOPS": "1", "WM_AUX_TYPE": "contrast"}
    r = load_recipe(PAPER, host=wmkit_host, environ=env)
    assert r.get("model.encoder.loops") == 5
    assert r.get("loss.aux.loops") == [1]
    assert r.get("loss.aux.name") == "ntxent"
    r = load_recipe(PAPER, overrides=["model.encoder.loops=4"], host=wmkit_host, environ=env)
    assert r.get("model.encoder.loops") == 4


def test_unknown_key_names_dotted_path_and_suggests(wmkit_host):
    with pytest.raises(RecipeError) as err:
        load_recipe(PAPER, overrides=["model.encodr.loops=4"], host=wmkit_host, environ={})
    assert "model.encodr" in str(err.value)
    assert "model.encoder" in str(err.value)
    assert err.value.exit_code == 2


def test_wrong_type_names_path(wmkit_host):
    with pytest.raises(RecipeError, match=r"model\.dim: expected integer"):
        load_recipe(PAPER, overrides=['model.dim="wide"'], host=wmkit_host, environ={})
    with pytest.raises(RecipeError, match=r"regularizer\.apply_to: 'everything' is not one of"):
        load_recipe(PAPER, overrides=["regularizer.apply_to=everything"], host=wmkit_host, environ={})


def test_aux_loop_outside_encoder_loops_is_refused(wmkit_host):
    with pytest.raises(RecipeError, match="loss.aux.loops: loop 4 is outside 1..3"):
        load_recipe(PAPER, overrides=["loss.aux.loops=[1, 4]"], host=wmkit_host, environ={})


def test_bad_environment_value_names_variable(wmkit_host):
    with pytest.raises(RecipeError, match="WM_ENCODER_LOOPS"):
        load_recipe(PAPER, host=wmkit_host, environ={"WM_ENCODER_LOOPS": "three"})


def test_toml_syntax_error_names_file_line_and_column(tmp_path, wmkit_host):
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta]\nname = \"x\"\nseed = = 3\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(str(bad), host=wmkit_host, environ={})
    message = str(err.value)
    assert str(bad) in message and "line 3" in message and "column" in message


def test_unknown_plugin_name_lists_available(wmkit_host):
    with pytest.raises(Exception, match="unknown regularizer 'vicrag'.*vicreg"):
        load_recipe(PAPER, overrides=["regularizer.name=vicrag"], host=wmkit_host, environ={})


def test_every_shipped_recipe_resolves_and_round_trips(wmkit_host):
    names = shipped_recipes()
    assert {"quickstart", PAPER, "kernel_default"} <= set(names)
    for name in names:
        r = load_recipe(name, host=wmkit_host, environ={})
        assert tomllib.loads(r.to_toml()) == r.values, name


def test_parse_override_values():
    assert parse_override("a.b=4") == ("a.b", 4)
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a.b=true") == ("a.b", True)
    assert parse_override("a.b=vicreg") == ("a.b", "vicreg")
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        parse_override("novalue")


def test_env_table_targets_exist_in_paper_recipe(wmkit_host):
    r = load_recipe(PAPER, host=wmkit_host, environ={})
    aux_only = {"loss.aux.temperature", "loss.aux.pos_threshold"}
    for var, (key, _convert, _note) in ENV_VARS.items():
        if key in aux_only:
            continue
        node = r.values
        for part in key.split("."):
            assert part in node, f"{var} maps to missing key {key}"
            node = node[part]


def test_dump_toml_nested():
    tree = {"a": {"x": 1, "b": {"y": [1, 2], "z": "s"}}, "c": {"t": True, "f": 0.5}}
    assert tomllib.loads(dump_toml(tree)) == tree


def test_docs_list_every_core_key_and_environment_variable():
    from pathlib import Path

    from wmkit.recipe import CORE_SCHEMA
    from wmkit.schema import Field

    docs = (Path(__file__).parents[1] / "docs" / "recipes.md").read_text()

    def keys(node, prefix=""):
        for key, spec in node.items():
            if isinstance(spec, Field):
                yield f"{prefix}{key}"
            else:
                yield from keys(spec, f"{prefix}{key}.")

    for key in keys(CORE_SCHEMA):
        assert f"`{key}`" in docs, f"{key} missing from docs/recipes.md (regenerate with wmkit recipe keys --markdown)"
    for var in ENV_VARS:
        assert f"`{var}`" in docs, var


def test_deprecated_aux_type_is_accepted_and_overrides_like_its_new_name(tmp_path):
    from wmkit.recipe import load_recipe

    # --set with the old name overrides the recipe's new name
    r = load_recipe("loops3_auxpred_vicreg", overrides=["loss.aux.type=ntxent"], environ={})
    assert r.get("loss.aux.name") == "ntxent" and any("loss.aux.type is deprecated" in n for n in r.notes)
    # a recipe using the old name still loads, and overrides the recipe it extends
    old = tmp_path / "old.toml"
    old.write_text('[meta]\nextends = "loops3_auxpred_vicreg"\n[loss.aux]\ntype = "cos_align"\n')
    r = load_recipe(str(old), environ={})
    assert r.get("loss.aux.name") == "cos_align" and r.notes
    # both names with different values in one file: one line saying which to keep
    both = tmp_path / "both.toml"
    both.write_text('[loss.aux]\ntype = "pred"\nname = "none"\n')
    with pytest.raises(RecipeError, match="loss.aux.type = 'pred' and loss.aux.name = 'none' disagree"):
        load_recipe(str(both), environ={})


def test_recipe_show_toml_reads_back_equal_for_every_shipped_recipe():
    """``to_toml`` (tomli-w) is what tomllib reads back, keys that need quoting and awkward strings included."""
    for name in shipped_recipes():
        recipe = load_recipe(name, environ={})
        assert tomllib.loads(recipe.to_toml()) == recipe.values, name
    tree = {"meta": {"description": 'quote " backslash \\ newline \n tab \t é'}, "a.b": {"key with space": [1, 2.5e-07]}}
    assert tomllib.loads(dump_toml(tree)) == tree


def test_toml_value_is_one_inline_literal():
    from wmkit.recipe import parse_override, toml_value

    for value in (3, 3e-4, True, "s p\"q", [1, 2], ["x", 0.5], []):
        text = toml_value(value)
        assert "\n" not in text and parse_override(f"k={text}") == ("k", value)
