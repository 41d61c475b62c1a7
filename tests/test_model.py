"""The world model: shapes and parameter counts (reference §3, docs/reference.md#s3), target semantics,
stop-gradients, loss composition (reference §4, docs/reference.md#s4), encoder/predictor options, training
sanity and seeding."""

from __future__ import annotations

import copy

import pytest
import torch

from wmkit import objective
from wmkit.components import Encoder, Predictor
from wmkit.errors import DataError, RecipeError
from wmkit.model import WorldModel, build_world_model
from wmkit.recipe import CORE_SCHEMA, set_dotted
from wmkit.schema import validate
from wmkit_action_encoders.plugin import EditTokensOptions, MLPOptions, TokenBagOptions
from wmkit_aux_losses.plugin import NTXentOptions
from wmkit_encoders.plugin import LoopedEncoderOptions
from wmkit_predictors.plugin import LoopedPredictorOptions
from wmkit_regularizers.plugin import SIGRegOptions, VICRegOptions

VOCAB, PAD, ACTIONS = 50, 0, 3


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and 2 threads on a shared 2-core machine thrash."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def recipe(**dotted) -> dict:
    """A validated recipe: core defaults + built-in plugin options, then ``a__b=v`` overrides."""
    schema = copy.deepcopy(CORE_SCHEMA)
    schema["model"]["encoder"].update(LoopedEncoderOptions.fields)
    schema["model"]["predictor"].update(LoopedPredictorOptions.fields)
    schema["model"]["action"].update({**MLPOptions.fields, **EditTokensOptions.fields, **TokenBagOptions.fields})
    schema["regularizer"].update({**VICRegOptions.fields, **SIGRegOptions.fields})
    schema["loss"]["aux"].update(NTXentOptions.fields)
    raw: dict = {}
    for key, value in dotted.items():
        set_dotted(raw, key.replace("__", "."), value)
    return validate(schema, raw)


def tiny(**dotted) -> dict:
    """dim 16, 2 heads, max_len 16, no dropout, 2 predictor blocks x 2 loops, paper losses."""
    base = dict(model__dim=16, model__heads=2, model__dropout=0.0, data__max_len=16,
                model__action__hidden=16, model__projector__hidden=32, model__predictor__loops=2,
                loss__aux__name="pred", loss__aux__loops=[1, 2], regularizer__name="vicreg")
    return recipe(**{**base, **dotted})


def build(values, wmkit_host, vocab=VOCAB, actions=ACTIONS) -> WorldModel:
    return build_world_model(values, vocab_size=vocab, pad_id=PAD, action_dim=actions, resolve=wmkit_host.resolve)


def batch(n=8, length=12, seed=0, vocab=VOCAB):
    g = torch.Generator().manual_seed(seed)
    before = torch.randint(1, vocab, (n, length), generator=g)
    after = before.clone()
    after[:, length // 2:] = torch.randint(1, vocab, (n, length - length // 2), generator=g)
    return before, after, torch.randn(n, ACTIONS, generator=g)


# -- parameter counts (reference §3, docs/reference.md#s3) ---------------------------------------------------
PAPER_V2 = {"one block": 198_272, "online encoder": 354_432, "EMA target": 354_432, "action encoder": 18_560,
            "predictor": 396_800, "projectors": 132_864, "total": 1_257_088, "trainable": 902_656,
            "inference export": 835_456}


def test_paper_configuration_parameter_counts(wmkit_host):
    model = build(recipe(), wmkit_host, vocab=700, actions=15)
    assert dict(model.parameter_breakdown()) == PAPER_V2
    v1 = dict(build(recipe(model__encoder__loops=6), wmkit_host, vocab=662, actions=7).parameter_breakdown())
    assert v1["total"] == 1_246_336
    assert (v1["online encoder"], v1["action encoder"], v1["trainable"], v1["inference export"]) == (
        349_568, 17_536, 896_768, 829_568)


def test_position_table_is_a_buffer_outside_the_checkpoint(wmkit_host):
    model = build(recipe(), wmkit_host, vocab=700, actions=15)
    assert model.encoder.positions.shape == (513, 128)
    assert not any("positions" in key for key in model.state_dict())
    # the state dict round-trips into a fresh model
    build(recipe(), wmkit_host, vocab=700, actions=15).load_state_dict(model.state_dict(), strict=True)


def test_components_subclass_the_interfaces(wmkit_host):
    model = build(tiny(), wmkit_host)
    assert isinstance(model.encoder, Encoder) and isinstance(model.predictor, Predictor)


# -- target encoder (defect D7, docs/reference.md#d7) --------------------------------------------------------
def test_target_stays_in_eval_mode_without_gradients(wmkit_host):
    model = build(tiny(model__dropout=0.5), wmkit_host)
    model.train()
    assert model.encoder.training and model.predictor.training
    assert not any(m.training for m in model.target.modules())
    assert not any(p.requires_grad for p in model.target.parameters())
    tokens = batch()[0]
    assert torch.equal(model.target(tokens).z, model.target(tokens).z)  # no dropout in the target
    assert not torch.equal(model.encoder(tokens).z, model.encoder(tokens).z)  # dropout in the online encoder


def test_ema_update_is_exact_for_one_step(wmkit_host):
    model = build(tiny(model__target__ema_decay=0.9), wmkit_host)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    old = [p.clone() for p in model.target.parameters()]
    model.update_target()
    for before, target, online in zip(old, model.target.parameters(), model.encoder.parameters()):
        torch.testing.assert_close(target, 0.9 * before + 0.1 * online, rtol=1e-6, atol=1e-7)


def test_ema_decay_one_freezes_the_target(wmkit_host):
    model = build(tiny(model__target__ema_decay=1.0), wmkit_host)
    old = copy.deepcopy(model.target.state_dict())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    model.update_target()
    for key, value in model.target.state_dict().items():
        assert torch.equal(value, old[key])


# -- stop-gradient on z_t (reference §4, docs/reference.md#s4) -----------------------------------------------
def encoder_gradient(model, values_batch) -> float | None:
    model.train()
    model.zero_grad(set_to_none=True)
    model(*values_batch)["loss"].backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    return None if not grads else sum(float(g.abs().sum()) for g in grads)


def test_main_prediction_path_sends_no_gradient_into_the_encoder(wmkit_host):
    data = batch()
    cut = build(tiny(loss__aux__name="none", regularizer__name="none", loss__cov__weight=0.0), wmkit_host)
    assert encoder_gradient(cut, data) is None
    assert any(p.grad is not None for p in cut.predictor.parameters())
    assert any(p.grad is not None for p in cut.action_encoder.parameters())
    for values in (tiny(regularizer__name="none", loss__cov__weight=0.0),  # aux pred only
                   tiny(loss__aux__name="none", regularizer__name="none"),  # cov only
                   tiny(loss__aux__name="none", loss__cov__weight=0.0)):  # regularizer only
        assert encoder_gradient(build(values, wmkit_host), data) > 0


# -- loss composition ----------------------------------------------------------------------------
def test_total_is_the_weighted_sum_of_reported_terms(wmkit_host):
    values = tiny(loss__pred__weight=1.5, loss__dir__weight=0.25, loss__mag__weight=0.2, loss__cov__weight=0.03,
                  regularizer__weight=0.7, loss__aux__weight=0.4)
    model = build(values, wmkit_host)
    model.train()
    out = model(*batch())
    expected = (1.5 * out["pred"] + 0.25 * out["dir"] + 0.2 * out["mag"] + 0.03 * out["cov"]
                + 0.7 * out["reg"] + 0.4 * out["aux"])
    torch.testing.assert_close(out["loss"].detach(), expected)
    torch.testing.assert_close(out["aux"], out["aux_l1"] + out["aux_l2"])
    torch.testing.assert_close(out["reg"], out["reg_variance"] + 0.04 * out["reg_covariance"])
    assert all(not v.requires_grad for k, v in out.items() if k != "loss")


@pytest.mark.parametrize("form", ["cosine", "delta_mse", "delta_cosine"])
def test_prediction_terms_match_the_embeddings(wmkit_host, form):
    """With dropout 0, train-mode terms equal the formulas applied to ``embed`` outputs."""
    model = build(tiny(loss__pred__form=form), wmkit_host)
    data = batch()
    model.train()
    out = model(*data)
    model.eval()
    emb = model.embed(*data)
    if form.startswith("delta"):
        target_delta = emb.target_after - emb.target_before  # the paper's Δz, target on both sides
    else:
        target_delta = emb.target_after - emb.online_before
    pred_delta = emb.pred - emb.online_before
    expected_pred = {"cosine": objective.pred_cosine(emb.pred, emb.target_after),
                     "delta_mse": objective.delta_mse(pred_delta, target_delta),
                     "delta_cosine": objective.delta_cosine(pred_delta, target_delta)}[form]
    torch.testing.assert_close(out["pred"], expected_pred)
    torch.testing.assert_close(out["dir"], objective.direction_loss(pred_delta, target_delta))
    torch.testing.assert_close(out["mag"], objective.magnitude_loss(pred_delta, target_delta))
    z_all = torch.cat([emb.online_before, emb.online_after])
    torch.testing.assert_close(out["cov"], objective.covariance_loss(z_all))


def test_projector_mse_uses_both_projectors(wmkit_host):
    model = build(tiny(), wmkit_host)
    data = batch()
    model.eval()
    emb = model.embed(*data)
    model.train()
    out = model(*data)
    expected = objective.pred_projector_mse(emb.pred, emb.target_after, model.pred_projector, model.target_projector)
    torch.testing.assert_close(out["pred"], expected.detach())
    no_projector = build(tiny(model__projector__enabled=False), wmkit_host)
    assert no_projector.pred_projector is None
    assert "projectors" not in dict(no_projector.parameter_breakdown())


def test_regularizer_placement(wmkit_host):
    data = batch()
    encoder_only = build(tiny(), wmkit_host)(*data)
    assert {"reg_variance", "reg_covariance"} <= set(encoder_only)
    predictor_only = build(tiny(regularizer__apply_to="predictor"), wmkit_host)(*data)
    assert "reg_invariance" in predictor_only  # the target is passed as the paired view
    both = build(tiny(regularizer__apply_to="both"), wmkit_host)(*data)
    torch.testing.assert_close(both["reg"], both["reg_encoder_variance"] + 0.04 * both["reg_encoder_covariance"]
                               + both["reg_predictor_variance"] + 0.04 * both["reg_predictor_covariance"])


def test_aux_loops_are_validated(wmkit_host):
    with pytest.raises(RecipeError, match=r"loss.aux.loops: loop 4 is outside 1..3"):
        build(tiny(loss__aux__loops=[1, 4]), wmkit_host)
    with pytest.raises(RecipeError, match=r"loss.aux.loops: loop 0 is outside 1..3"):
        build(tiny(loss__aux__loops=[0]), wmkit_host)
    with pytest.raises(RecipeError, match=r"model.predictor.input_loop: 4 is outside 0..3"):
        build(tiny(model__predictor__input_loop=4), wmkit_host)
    with pytest.raises(RecipeError, match=r"model.heads: 3 does not divide model.dim = 16"):
        build(tiny(model__heads=3), wmkit_host)


# -- encoder and predictor options ------------------------------------------------------------------
@pytest.mark.parametrize("pool", ["attn", "cls", "mean"])
def test_encoder_loop_readouts(wmkit_host, pool):
    model = build(tiny(model__encoder__pool=pool), wmkit_host).eval()
    out = model.encoder(batch()[0])
    assert len(out.loops) == 3 and out.loops[-1] is out.z and out.z.shape == (8, 16)
    assert not torch.allclose(out.loops[0], out.loops[1])


@pytest.mark.parametrize("pool", ["attn", "mean", "cls"])
def test_mask_padding_makes_trailing_pad_invisible(wmkit_host, pool):
    masked = build(tiny(model__encoder__pool=pool, model__encoder__mask_padding=True), wmkit_host).eval()
    plain = build(tiny(model__encoder__pool=pool), wmkit_host).eval()
    plain.load_state_dict(masked.state_dict())
    tokens = batch(length=10)[0]
    padded = torch.cat([tokens, torch.full((8, 6), PAD)], dim=1)
    with torch.no_grad():
        # no padding present: the option changes nothing
        torch.testing.assert_close(masked.encoder(tokens).z, plain.encoder(tokens).z)
        # padding present: masked output ignores it, the reference (attend PAD) does not
        torch.testing.assert_close(masked.encoder(padded).z, masked.encoder(tokens).z, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(plain.encoder(padded).z, plain.encoder(tokens).z, atol=1e-4)


def test_encoder_refuses_sequences_longer_than_max_len(wmkit_host):
    model = build(tiny(), wmkit_host)
    with pytest.raises(DataError, match="17 tokens per state.*data.max_len = 16"):
        model.encoder(torch.ones(2, 17, dtype=torch.long))


def test_residual_predictor_adds_the_state(wmkit_host):
    residual = build(tiny(model__predictor__residual=True), wmkit_host).eval()
    plain = build(tiny(), wmkit_host).eval()
    plain.load_state_dict(residual.state_dict())
    state, action = torch.randn(4, 16), torch.randn(4, 16)
    with torch.no_grad():
        torch.testing.assert_close(residual.predictor(state, action), state + plain.predictor(state, action))


def test_input_loop_selects_the_predictor_input(wmkit_host):
    data = batch()
    for k in (0, 1, 2):
        model = build(tiny(model__predictor__input_loop=k), wmkit_host).eval()
        emb = model.embed(*data, loops=True)
        expected_state = emb.online_before if k == 0 else emb.online_loops_before[k - 1]
        torch.testing.assert_close(emb.predictor_input, expected_state)
        with torch.no_grad():
            torch.testing.assert_close(emb.pred, model.predict_with(expected_state, data[2]))


def test_embed_and_predict_with(wmkit_host):
    model = build(tiny(), wmkit_host).eval()
    before, after, actions = batch()
    emb = model.embed(before, after, actions)
    for name in ("online_before", "online_after", "target_before", "target_after", "pred", "action_embedding"):
        assert getattr(emb, name).shape == (8, 16), name
    assert emb.online_loops_before is None
    # a fresh model's target equals its online encoder
    torch.testing.assert_close(emb.target_before, emb.online_before)
    with torch.no_grad():
        shuffled = model.predict_with(emb.online_before, actions.flip(0))
    assert not torch.allclose(shuffled, emb.pred)


# -- training sanity and seeding (defect D3, docs/reference.md#d3) -------------------------------------------
def test_tiny_model_overfits_a_fixed_batch(wmkit_host):
    torch.manual_seed(0)
    model = build(tiny(), wmkit_host)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    data = batch(n=16)
    losses = []
    for _ in range(30):
        model.train()
        loss = model(*data)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_target()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    assert min(losses[-5:]) < min(losses[:5])


def test_same_seed_same_weights_different_seed_different(wmkit_host):
    def weights(seed):
        torch.manual_seed(seed)
        return build(tiny(), wmkit_host).state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["encoder.cls"], other["encoder.cls"])
    assert not torch.equal(first["encoder.attn_pool.query"], other["encoder.attn_pool.query"])


def test_self_attention_matches_torch_multihead_attention():
    """The SDPA-based block attention computes what nn.MultiheadAttention computes with the same
    weights, with and without a padding mask (eval mode: no dropout)."""
    import torch
    from torch import nn

    from wmkit.layers import SelfAttention

    torch.manual_seed(0)
    ours, ref = SelfAttention(32, 4).eval(), nn.MultiheadAttention(32, 4, batch_first=True).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 7, 32)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[1, 4:] = True
    for m in (None, mask):
        expected, _ = ref(x, x, x, key_padding_mask=m, need_weights=False)
        assert torch.allclose(ours(x, m), expected, atol=1e-5)


def test_attention_dropout_option_reaches_the_block():
    import torch

    from wmkit.model import build_world_model
    from wmkit.plugins import PluginHost
    from wmkit.recipe import load_recipe

    host = PluginHost()
    for value, expected in ((0.0, 0.0), (0.2, 0.2), (-1.0, 0.1)):
        recipe = load_recipe("loops3_auxpred_vicreg", host=host, environ={}, overrides=[
            "model.dim=32", "model.heads=2", "data.max_len=16", f"model.encoder.attention_dropout={value}"])
        model = build_world_model(recipe.values, vocab_size=50, pad_id=0, action_dim=15, resolve=host.resolve)
        assert model.encoder.block.attn.dropout == expected
        assert model.encoder.dropout.p == 0.1  # embedding/MLP dropout is model.dropout, unchanged
    # with no attention dropout, the attention output is deterministic in train mode
    attn = model.encoder.block.attn
    attn.dropout = 0.0
    attn.train()
    x = torch.randn(2, 5, 32)
    assert torch.equal(attn(x), attn(x))
