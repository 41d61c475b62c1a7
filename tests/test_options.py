"""Typed options (wmkit.options): one declaration is the schema and the record code reads."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import pytest

from wmkit.errors import RecipeError
from wmkit.options import Options
from wmkit.recipe import CORE_SCHEMA, ModelOptions, RecipeOptions, load_recipe
from wmkit.schema import Field


class Toy(Options):
    width = Field(int, 8, "width", minimum=1)
    mode = Field(str, "a", "mode", choices=("a", "b"))
    sizes = Field(list, [1, 2], "sizes", item=int)


def test_of_fills_defaults_checks_values_and_keeps_extras():
    opts = Toy.of({"width": 3.0, "name": "toy"})
    assert (opts.width, opts.mode, opts.sizes) == (3, "a", [1, 2]) and isinstance(opts.width, int)
    assert opts.name == "toy" and dict(opts) == {"width": 3, "mode": "a", "sizes": [1, 2], "name": "toy"}
    assert Toy.of(opts) is opts
    assert opts.sizes is not Toy.fields["sizes"].default  # a record's list is its own copy
    with pytest.raises(RecipeError, match=r"^x\.width: 0 is below the minimum 1$"):
        Toy.of({"width": 0}, "x.")
    with pytest.raises(RecipeError, match=r"mode: 'c' is not one of 'a', 'b'"):
        Toy.of({"mode": "c"})


def test_a_record_is_read_only_and_survives_copies():
    opts = Toy.of({"width": 5})
    with pytest.raises(AttributeError, match="read-only"):
        opts.width = 6
    with pytest.raises(AttributeError, match="no option 'height'"):
        opts.height
    assert copy.deepcopy(opts) == opts and pickle.loads(pickle.dumps(opts)) == opts
    assert opts != Toy.of({"width": 6})


def test_an_option_may_not_shadow_the_record_api():
    with pytest.raises(TypeError, match="get"):
        type("Bad", (Options,), {"get": Field(int, 1, "")})


def test_the_field_dict_form_becomes_a_class():
    cls = Options.from_fields("rows_options", {"rows": Field(int, 400, "rows")})
    assert list(cls.fields) == ["rows"] and cls.of({}).rows == 400 and cls.of({}).get("rows") == 400


def test_core_sections_are_the_core_schema():
    assert CORE_SCHEMA["model"]["dim"] is ModelOptions.fields["dim"]
    assert list(CORE_SCHEMA) == list(RecipeOptions.members)
    assert list(CORE_SCHEMA["model"])[:4] == ["dim", "heads", "mlp_ratio", "dropout"]
    assert CORE_SCHEMA["model"]["encoder"]["name"].default == "looped_transformer"  # the kind's key, first


def test_cross_field_checks_live_with_their_fields():
    with pytest.raises(RecipeError, match=r"^model\.heads: 3 does not divide model\.dim = 16$"):
        ModelOptions.of({"dim": 16, "heads": 3}).check()
    with pytest.raises(RecipeError, match=r"model\.predictor\.input_loop: 4 is outside 0\.\.3"):
        RecipeOptions.of({"model": {"predictor": {"input_loop": 4}}}).check_model()
    with pytest.raises(RecipeError, match=r"loss\.aux\.loops: loop 5 is outside 1\.\.3"):
        RecipeOptions.of({"loss": {"aux": {"loops": [5]}}}).check()


def test_a_recipe_reads_as_attributes(wmkit_host):
    recipe = load_recipe("quickstart", overrides=["optim.lr=0.001"], host=wmkit_host, environ={})
    o = recipe.options
    assert o.optim.lr == recipe.values["optim"]["lr"] == 0.001
    assert o.model.encoder.name == recipe.values["model"]["encoder"]["name"]
    assert o.model.encoder.pool == recipe.values["model"]["encoder"]["pool"]  # a plugin's option, an extra
    assert o.to_dict() == recipe.values


def test_registrations_are_typed_and_light(wmkit_host):
    from wmkit_encoders.plugin import LoopedEncoderOptions

    comp = wmkit_host.get("encoder", "looped_transformer")
    assert comp.options_type is LoopedEncoderOptions and comp.options == LoopedEncoderOptions.fields
    code = ("import sys, wmkit.options, wmkit.recipe, wmkit_encoders.plugin, wmkit_predictors.plugin, "
            "wmkit_action_encoders.plugin, wmkit_regularizers.plugin, wmkit_aux_losses.plugin, wmkit_loggers.plugin, "
            "wmkit_code.plugin, wmkit_kernel.plugin; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
