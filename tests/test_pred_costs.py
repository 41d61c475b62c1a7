"""The built-in prediction costs (projector_mse, cosine, delta_mse, delta_cosine, infonce) against independent
NumPy computations, and the kind's contract with the world model and the recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from wmkit.components import PredCost, PredCostInputs
from wmkit.errors import RecipeError, WmkitError

FORMS = ("projector_mse", "cosine", "delta_mse", "delta_cosine", "infonce")
EPS = 1e-6  # the reference's norm floor


@pytest.fixture
def build(wmkit_host):
    def make(name, **options):
        return wmkit_host.resolve("pred_cost", name)(dim=0, options=options)

    return make


def t(x):
    return torch.tensor(np.asarray(x, dtype=np.float64))


def sample(seed=0, n=6, d=4):
    rng = np.random.default_rng(seed)
    pred, target, pd, td = (rng.normal(size=(n, d)) for _ in range(4))
    online = rng.normal(size=(2 * n, d))
    return pred, target, pd, td, online


def inputs(pred, target, pd, td, online, projectors=(None, None)):
    return PredCostInputs(pred=t(pred), target=t(target), pred_delta=t(pd), target_delta=t(td), online=t(online),
                          pred_projector=projectors[0], target_projector=projectors[1])


def np_unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_cos(a, b):
    return (np_unit(a) * np_unit(b)).sum(axis=1)


def np_mag(pd, td):
    lp = np.log(np.maximum(np.linalg.norm(pd, axis=1), EPS) + EPS)
    lt = np.log(np.maximum(np.linalg.norm(td, axis=1), EPS) + EPS)
    return ((lp - lt) ** 2).mean()


def np_cov(z):
    centred = z - z.mean(axis=0)
    c = centred.T @ centred / (len(z) - 1)
    return ((c - np.diag(np.diag(c))) ** 2).sum() / z.shape[1]


def test_registered_classes_and_defaults(wmkit_host):
    assert sorted(wmkit_host.names("pred_cost")) == sorted(FORMS)
    for name in FORMS:
        component = wmkit_host.get("pred_cost", name)
        cls = component.load()
        assert issubclass(cls, PredCost)
        assert sorted(component.options) == (["temperature"] if name == "infonce" else [])
        assert cls.terms == ("pred", "dir", "mag", "cov")
    origins = {name: wmkit_host.resolve("pred_cost", name).target_delta_origin for name in FORMS}
    assert origins == {"projector_mse": "predictor_input", "cosine": "predictor_input",
                       "delta_mse": "target_before", "delta_cosine": "target_before", "infonce": "target_before"}


@pytest.mark.parametrize("form", FORMS)
def test_displacement_and_covariance_terms(build, form):
    pred, target, pd, td, online = sample(1)
    pd[0] = 0.0  # a zero predicted delta: the norm floor keeps mag finite
    out = build(form)(inputs(pred, target, pd, td, online))
    assert list(out) == ["pred", "dir", "mag", "cov"]
    unit_pd = pd / np.maximum(np.linalg.norm(pd, axis=1, keepdims=True), EPS)
    assert out["dir"].item() == pytest.approx(1.0 - (unit_pd * np_unit(td)).sum(axis=1).mean(), rel=1e-12)
    assert out["mag"].item() == pytest.approx(np_mag(pd, td), rel=1e-12)
    assert out["cov"].item() == pytest.approx(np_cov(online), rel=1e-12)


def test_projector_mse_projects_each_side_with_its_own_projector(build):
    pred, target, pd, td, online = sample(2)
    rng = np.random.default_rng(3)
    wp, bp, wt, bt = rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(5, 4)), rng.normal(size=5)
    projectors = []
    for w, b in ((wp, bp), (wt, bt)):
        layer = nn.Linear(4, 5).double()
        with torch.no_grad():
            layer.weight.copy_(t(w))
            layer.bias.copy_(t(b))
        projectors.append(layer)
    got = build("projector_mse")(inputs(pred, target, pd, td, online, tuple(projectors)))["pred"].item()
    u, v = np_unit(pred @ wp.T + bp), np_unit(target @ wt.T + bt)
    assert got == pytest.approx(((u - v) ** 2).mean(), rel=1e-12)
    # (2 - 2cos)/D in projector space
    assert got == pytest.approx((2 - 2 * np_cos(pred @ wp.T + bp, target @ wt.T + bt)).mean() / 5, rel=1e-12)
    # without projectors (model.projector.enabled = false) the same MSE on the raw embeddings
    raw = build("projector_mse")(inputs(pred, target, pd, td, online))["pred"].item()
    assert raw == pytest.approx(((np_unit(pred) - np_unit(target)) ** 2).mean(), rel=1e-12)


def test_cosine_is_one_minus_the_mean_cosine_of_prediction_and_target(build):
    pred, target, pd, td, online = sample(4)
    got = build("cosine")(inputs(pred, target, pd, td, online))["pred"].item()
    assert got == pytest.approx(1.0 - np_cos(pred, target).mean(), rel=1e-12)


def test_delta_mse_is_the_element_mean_squared_delta_error(build):
    pred, target, pd, td, online = sample(5)
    got = build("delta_mse")(inputs(pred, target, pd, td, online))["pred"].item()
    assert got == pytest.approx(((pd - td) ** 2).mean(), rel=1e-12)


def test_delta_cosine_is_one_minus_the_mean_cosine_of_the_deltas(build):
    pred, target, pd, td, online = sample(6)
    got = build("delta_cosine")(inputs(pred, target, pd, td, online))["pred"].item()
    assert got == pytest.approx(1.0 - np_cos(pd, td).mean(), rel=1e-12)


def test_infonce_is_the_cross_entropy_of_finding_its_own_target_in_the_batch(build):
    pred, target, pd, td, online = sample(8)
    for tau in (0.002, 0.5):
        got = build("infonce", temperature=tau)(inputs(pred, target, pd, td, online))["pred"].item()
        logits = np_unit(pred) @ np_unit(target).T / tau
        logits -= logits.max(axis=1, keepdims=True)
        want = -(np.diag(logits) - np.log(np.exp(logits).sum(axis=1))).mean()
        assert got == pytest.approx(want, rel=1e-9)
    # a prediction equal to its own target, far from the others, costs almost nothing
    exact = build("infonce", temperature=0.002)(inputs(target, target, pd, td, online))["pred"].item()
    assert exact < 1e-6


def test_infonce_temperature_is_a_checked_recipe_option(wmkit_host):
    from wmkit.recipe import load_recipe

    values = load_recipe("loops3_auxpred_vicreg", overrides=["loss.pred.form=infonce"], host=wmkit_host).values
    assert values["loss"]["pred"]["temperature"] == 0.002
    with pytest.raises(RecipeError, match="loss.pred.temperature"):
        load_recipe("loops3_auxpred_vicreg", overrides=["loss.pred.form=infonce", "loss.pred.temperature=0"],
                    host=wmkit_host)


def test_the_prediction_term_sends_gradient_only_to_the_prediction(build):
    pred, target, pd, td, online = sample(7)
    x = inputs(pred, target, pd, td, online)
    x.pred.requires_grad_(True)
    build("cosine")(x)["pred"].backward()
    assert x.pred.grad is not None and x.pred.grad.abs().sum() > 0


# -- the kind in the world model and the recipe -------------------------------------------------------
def _tiny_recipe(wmkit_host, *overrides):
    from wmkit.recipe import load_recipe

    small = ["model.dim=16", "model.heads=2", "data.max_len=16", "model.projector.hidden=32",
             "model.action.hidden=16", "model.predictor.loops=2", "model.dropout=0.0"]
    return load_recipe("loops3_auxpred_vicreg", overrides=small + list(overrides), host=wmkit_host).values


def _batch(n=8, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    before = torch.randint(1, 50, (n, length), generator=g)
    after = before.clone()
    after[:, length // 2:] = torch.randint(1, 50, (n, length - length // 2), generator=g)
    return before, after, torch.randn(n, 15, generator=g)


def _model(wmkit_host, values):
    from wmkit.model import build_world_model

    torch.manual_seed(0)
    return build_world_model(values, vocab_size=50, pad_id=0, action_dim=15, resolve=wmkit_host.resolve)


class HalfCosine(PredCost):
    """A third-party cost with one term: (1 - cos(ẑ, z̄)) / 2."""

    terms = ("pred",)

    def forward(self, inputs):
        return {"pred": (1 - torch.nn.functional.cosine_similarity(inputs.pred, inputs.target, dim=-1).mean()) / 2}


class Undeclared(PredCost):
    terms = ("pred",)

    def forward(self, inputs):
        return {"pred": inputs.pred.sum() * 0, "extra": inputs.pred.sum() * 0}


class BadOrigin(HalfCosine):
    target_delta_origin = "somewhere"


@pytest.fixture
def third_party(register_plugin):
    import wmkit

    class Plugin:
        @staticmethod
        @wmkit.hookimpl
        def wmkit_register_pred_costs(register):
            register("half_cosine", HalfCosine, description="(1 - cos) / 2")
            register("undeclared", Undeclared, description="returns a term it does not declare")
            register("bad_origin", BadOrigin, description="an unknown target_delta_origin")

    return register_plugin(Plugin, "third_party_costs")


def test_a_third_party_cost_is_chosen_by_loss_pred_form_and_weighted_by_its_terms(wmkit_host, third_party):
    values = _tiny_recipe(wmkit_host, "loss.pred.form=half_cosine", "loss.pred.weight=2.0", "loss.aux.weight=0.5",
                          "regularizer.weight=0.25")
    model = _model(wmkit_host, values).train()
    data = _batch()
    out = model(*data)
    assert "dir" not in out and "mag" not in out and "cov" not in out  # only the cost's own terms
    torch.testing.assert_close(out["loss"].detach(), 2.0 * out["pred"] + 0.25 * out["reg"] + 0.5 * out["aux"])
    model.eval()
    emb = model.embed(*data)
    cos = torch.nn.functional.cosine_similarity(emb.pred, emb.target_after, dim=-1).mean()
    torch.testing.assert_close(out["pred"], (1 - cos) / 2)


def test_a_cost_that_returns_an_undeclared_term_is_refused(wmkit_host, third_party):
    model = _model(wmkit_host, _tiny_recipe(wmkit_host, "loss.pred.form=undeclared"))
    with pytest.raises(WmkitError, match=r"returned a term 'extra' missing from its `terms` \(pred\)"):
        model(*_batch())


def test_a_cost_with_an_unknown_target_delta_origin_is_refused(wmkit_host, third_party):
    with pytest.raises(WmkitError, match=r"BadOrigin: target_delta_origin = 'somewhere' is not one of "
                                         r"predictor_input, target_before"):
        _model(wmkit_host, _tiny_recipe(wmkit_host, "loss.pred.form=bad_origin"))


def test_an_unknown_form_names_the_key_and_the_costs(wmkit_host):
    with pytest.raises(RecipeError, match=r"loss\.pred\.form: unknown pred cost 'cosnie'.*cosine"):
        _tiny_recipe(wmkit_host, "loss.pred.form=cosnie")


def test_the_shipped_recipes_keep_their_form(wmkit_host):
    from wmkit.recipe import load_recipe

    assert load_recipe("delta_normalized", host=wmkit_host).get("loss.pred.form") == "delta_cosine"
    assert load_recipe("delta_final_readout", host=wmkit_host).get("loss.pred.form") == "delta_mse"
    assert load_recipe("loops3_auxpred_vicreg", host=wmkit_host).get("loss.pred.form") == "projector_mse"


def test_wmkit_plugins_lists_the_kind(wmkit_cli):
    result = wmkit_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.output) if r["kind"] == "pred_cost"]
    assert sorted(r["name"] for r in rows) == sorted(FORMS)
    assert all(r["status"] == "ok" and r["plugin"] == "pred_costs" for r in rows)
