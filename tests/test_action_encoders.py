"""Action encoders as a component kind; predictions that start from target(before)."""

import pytest
import torch

from wmkit import kinds
from wmkit.components import ActionEncoder, ActionInputs
from wmkit.errors import RecipeError, WmkitError

from test_model import ACTIONS, batch, build, tiny
from test_train import toy_host  # noqa: F401  (fixture)


def test_action_encoder_is_a_kind_with_a_hook_and_a_recipe_key(wmkit_host):
    kind = kinds.get("action_encoder")
    assert kind.hook == "wmkit_register_action_encoders" and kind.path == "model.action.name"
    assert set(wmkit_host.names("action_encoder")) >= {"mlp", "edit_tokens"}
    assert issubclass(wmkit_host.resolve("action_encoder", "edit_tokens"), kind.base_class())
    assert any(row["kind"] == "action_encoder" for row in wmkit_host.listing())


def test_mlp_keeps_the_papers_shape_and_parameter_names(wmkit_host):
    model = build(tiny(), wmkit_host)
    names = {n: tuple(p.shape) for n, p in model.action_encoder.named_parameters()}
    assert names == {"0.weight": (16, ACTIONS), "0.bias": (16,), "2.weight": (16, 16), "2.bias": (16,)}
    assert isinstance(model.action_encoder, ActionEncoder)


def test_edit_tokens_reads_the_edit(wmkit_host):
    torch.manual_seed(0)
    model = build(tiny(model__action__name="edit_tokens", model__action__window=8), wmkit_host).eval()
    before, after, actions = batch()
    with torch.no_grad():
        z = model.embed(before, after, actions)
        # the same states and vectors, but another pair's edit: the prediction moves
        other = model.predict_with(z.predictor_input, ActionInputs(vector=actions, before=before, after=after.roll(1, 0)))
        same = model.predict_with(z.predictor_input, ActionInputs(vector=actions, before=before, after=after))
    torch.testing.assert_close(same, z.pred)
    assert not torch.allclose(other, z.pred)
    with pytest.raises(WmkitError, match="reads the states' token ids"):
        model.predict_with(z.predictor_input, actions)
    # gradient reaches the token embedding through the training loss
    model.train()
    model(before, after, actions)["loss"].backward()
    assert model.action_encoder.embedding.weight.grad.abs().sum() > 0


def test_prediction_can_start_from_the_copy_baseline(wmkit_host):
    model = build(tiny(model__predictor__start="target_before", loss__pred__form="delta_mse"), wmkit_host).eval()
    before, after, actions = batch()
    with torch.no_grad():
        emb = model.embed(before, after, actions)
    # the learned gain starts at 0: the first prediction is target(before), exactly
    torch.testing.assert_close(emb.pred, emb.target_before)
    with pytest.raises(WmkitError, match="pass base=target"):
        model.predict_with(emb.predictor_input, actions)
    model.train()
    out = model(before, after, actions)
    out["loss"].backward()
    assert model.residual_gain.grad is not None and model.residual_gain.grad.abs() > 0
    # L_dir compares pred − target(before) with target(after) − target(before)
    assert set(out) >= {"pred", "dir", "mag"}


def test_unknown_start_is_refused(wmkit_host):
    with pytest.raises(RecipeError, match="model.predictor.start"):
        tiny(model__predictor__start="online")


def test_an_action_encoder_the_domain_offers_no_inputs_for_is_refused(toy_host, tmp_path):
    from test_train import toy_recipe  # noqa: PLC0415
    from wmkit.train import train

    recipe = toy_recipe(toy_host, "train.steps=2", "model.action.name=edit_tokens")
    with pytest.raises(RecipeError, match=r"model.action.name: action encoder 'edit_tokens' reads edit_tokens, "
                                          r"which domain 'toy' does not offer \(it offers vector\); choices: mlp"):
        train(recipe, out=tmp_path / "run", host=toy_host, live=False)
    assert not (tmp_path / "run").exists()
