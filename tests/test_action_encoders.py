"""Action encoders as a component kind; predictions that start from target(before)."""

import numpy as np
import pytest
import torch

from wmkit import kinds
from wmkit.components import ActionEncoder, ActionInputs
from wmkit.errors import RecipeError, WmkitError

from test_model import ACTIONS, VOCAB, batch, build, tiny
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


def test_token_bag_counts_are_the_linear_baselines_features():
    from wmkit.edits import token_bags
    from wmkit_action_encoders.token_bag import removed_added_counts

    pad = 0
    before = torch.tensor([[5, 6, 6, 7, 0, 0], [9, 9, 9, 3, 2, 0]])
    after = torch.tensor([[5, 6, 8, 7, 7, 0], [9, 3, 2, 0, 0, 0]])
    # hand count, 10 buckets: row 0 removed one 6, added one 8 and one 7; row 1 removed two 9s
    want = torch.zeros(2, 20)
    want[0, 6], want[0, 10 + 8], want[0, 10 + 7], want[1, 9] = 1, 1, 1, 2
    got = removed_added_counts(before, after, pad, 10)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got, torch.from_numpy(token_bags(before.numpy(), after.numpy(), pad, 10, buckets=10)))
    # hashed: token t counts in bucket t mod buckets
    torch.testing.assert_close(removed_added_counts(before, after, pad, 4),
                               torch.from_numpy(token_bags(before.numpy(), after.numpy(), pad, 10, buckets=4)))


def test_token_bag_with_add_action_holds_the_linear_edit_model(wmkit_host):
    from wmkit_action_encoders.token_bag import removed_added_counts

    torch.manual_seed(0)
    model = build(tiny(model__action__name="token_bag", model__action__with_vector=False,
                       model__predictor__start="target_before", model__predictor__output="update",
                       model__predictor__add_action=True), wmkit_host).eval()
    encoder = model.action_encoder
    before, after, actions = batch()
    with torch.no_grad():
        # count weights start at 0: an edit's counts do not move the first predictions
        assert encoder.counts.weight.abs().sum() == 0
        weights = torch.randn_like(encoder.counts.weight)
        encoder.counts.weight.copy_(weights)
        model.residual_gain.fill_(0.5)
        emb = model.embed(before, after, actions)
        blocks_only = model.predictor(emb.predictor_input, torch.zeros_like(emb.target_before))
        counts = removed_added_counts(before, after, model.action_encoder.pad_id, encoder.buckets)
    # pred = target(before) + g * (blocks' update + W · counts): the linear edit model plus the blocks
    update = model.predictor(emb.predictor_input, counts @ weights.T) - counts @ weights.T
    torch.testing.assert_close(emb.pred, emb.target_before + 0.5 * (update + counts @ weights.T))
    assert not torch.allclose(update, blocks_only)
    model.train()
    model(before, after, actions)["loss"].backward()
    assert encoder.counts.weight.grad.abs().sum() > 0


def _warm_model(wmkit_host, **extra):
    torch.manual_seed(0)
    options = dict(model__action__name="token_bag", model__action__init="ridge", model__action__init_pairs=48,
                   model__predictor__start="target_before", model__predictor__output="update",
                   model__predictor__add_action=True, model__predictor__zero_init=True,
                   loss__pred__form="delta_mse")
    options.update(extra)
    return build(tiny(**options), wmkit_host)


class _Pairs:
    def __init__(self, n=64, seed=1):
        self.before, self.after, actions = batch(n=n, seed=seed)
        self.actions = actions.numpy()
        self.before, self.after = self.before.numpy(), self.after.numpy()


def test_ridge_warm_start_makes_the_untrained_model_the_linear_edit_model(wmkit_host):
    from wmkit.edits import token_bags
    from wmkit.linear_edit import fit_linear_edit
    from wmkit.warm_start import warm_start_action_encoder

    model = _warm_model(wmkit_host)
    data, train_rows = _Pairs(), np.arange(60)
    fit = warm_start_action_encoder(model, data, train_rows, seed=0, device=torch.device("cpu"))
    assert fit["pairs"] == 48 and fit["features"] == 2 * VOCAB and model.residual_gain.item() == 1.0
    # the same fit, computed independently from the token bags and the initial target
    rows = np.sort(np.random.default_rng(0).choice(train_rows, size=48, replace=False))
    model.eval()
    with torch.no_grad():
        emb = model.embed(torch.from_numpy(data.before[rows]), torch.from_numpy(data.after[rows]),
                          torch.from_numpy(data.actions[rows]))
    x = token_bags(data.before[rows], data.after[rows], 0, VOCAB)
    want = fit_linear_edit(x, emb.target_before.double().numpy(), emb.target_after.double().numpy())
    assert want["alpha"] == fit["alpha"]
    linear = emb.target_before.double().numpy() + x @ want["weights"] + want["bias"]
    np.testing.assert_allclose(emb.pred.double().numpy(), linear, atol=1e-4)
    # training moves it: the blocks' zero-initialised branches get gradients
    model.train()
    model(*(torch.from_numpy(a[:16]) for a in (data.before, data.after, data.actions)))["loss"].backward()
    assert model.predictor.blocks[0].mlp[3].weight.grad.abs().sum() > 0


def test_ridge_warm_start_without_a_pass_through_predictor_is_refused(wmkit_host):
    from wmkit.warm_start import warm_start_action_encoder

    model = _warm_model(wmkit_host, model__predictor__zero_init=False)
    with pytest.raises(RecipeError, match="zero_init = true"):
        warm_start_action_encoder(model, _Pairs(), np.arange(60), seed=0, device=torch.device("cpu"))
    model = _warm_model(wmkit_host, model__predictor__start="none", loss__pred__form="projector_mse")
    with pytest.raises(RecipeError, match='model.predictor.start = "target_before"'):
        warm_start_action_encoder(model, _Pairs(), np.arange(60), seed=0, device=torch.device("cpu"))


def test_a_warm_started_run_records_its_fit_and_a_bad_one_writes_nothing(tmp_path, wmkit_host, monkeypatch):
    import json

    from test_recipes_smoke import SMOKE, python_edits
    from wmkit.recipe import load_recipe
    from wmkit.testing import write_commitpack_jsonl
    from wmkit.train import train

    source = write_commitpack_jsonl(tmp_path / "edits.jsonl", python_edits(40))
    overrides = [*SMOKE, f'data.source="jsonl:{source}"']
    bad = load_recipe("lever_linear_start", overrides=[*overrides, "model.predictor.zero_init=false"],
                      host=wmkit_host, environ={})
    with pytest.raises(RecipeError, match="zero_init = true"):
        train(bad, out=tmp_path / "bad", host=wmkit_host, live=False)
    assert not (tmp_path / "bad").exists()
    good = load_recipe("lever_linear_start", overrides=overrides, host=wmkit_host, environ={})
    train(good, out=tmp_path / "run", host=wmkit_host, live=False)
    fit = json.loads((tmp_path / "run" / "config.json").read_text())["warm_start"]
    assert fit["pairs"] > 0 and fit["alpha"] in (0.1, 1.0, 10.0, 100.0, 1000.0) and set(fit["inner_mse"])
    # the warm-started model is probed and kept as step-0, a candidate for selection like any other step
    index = json.loads((tmp_path / "run" / "checkpoints" / "index.json").read_text())
    assert index["steps"][0] == 0 and (tmp_path / "run" / "checkpoints" / "step-0").is_dir()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("event") == "eval"]
    assert evals[0]["step"] == 0 and [r["step"] for r in evals][1:] == [1, 2]
    from wmkit.checkpoint import load_weights

    counts = load_weights(tmp_path / "run" / "checkpoints" / "step-0")["action_encoder.counts.weight"]
    assert torch.count_nonzero(counts) > 0  # the fit, not the zero init
    # the audit's linear edit baseline reads at least as many training pairs as the warm start did
    from wmkit.audit import core, run_audit

    monkeypatch.setattr(core, "LINEAR_FIT_PAIRS", 2)
    audited = run_audit(tmp_path / "run", progress=False, save=False, host=wmkit_host, val_size=10)
    assert audited["linear_edit"]["fit_pairs"] == fit["pairs"] > 10
    # without a warm start there is nothing fitted to keep: the first checkpoint is a trained step
    plain = load_recipe("lever_linear_start", overrides=[*overrides, 'model.action.init="zero"'],
                        host=wmkit_host, environ={})
    train(plain, out=tmp_path / "plain", host=wmkit_host, live=False)
    assert 0 not in json.loads((tmp_path / "plain" / "checkpoints" / "index.json").read_text())["steps"]


def test_position_shifts_sum_each_tokens_moves_and_flip_sign_for_a_revert():
    from wmkit_action_encoders.token_bag import position_shifts, removed_added_counts

    # row 0 swaps two tokens (a reordering: the bag of removed and added tokens is empty); row 1 is its revert
    before = torch.tensor([[5, 6, 7, 8, 0], [5, 8, 7, 6, 0]])
    after = torch.tensor([[5, 8, 7, 6, 0], [5, 6, 7, 8, 0]])
    assert removed_added_counts(before, after, 0, 10).abs().sum() == 0
    got = position_shifts(before, after, 0, 10)
    want = torch.zeros(2, 10)
    want[0, 6], want[0, 8] = (3 - 1) / 5, (1 - 3) / 5  # token 6 moved from position 1 to 3, token 8 back
    want[1] = -want[0]
    torch.testing.assert_close(got, want)
    # a token that stays where it is contributes nothing, however often it occurs; padding never counts
    same = torch.tensor([[4, 4, 9, 0, 0]])
    torch.testing.assert_close(position_shifts(same, same, 0, 10), torch.zeros(1, 10))
    # hashed: bucket t mod buckets sums its tokens' shifts
    torch.testing.assert_close(position_shifts(before, after, 0, 4),
                               torch.stack([want[:, k::4].sum(1) for k in range(4)], dim=1))



def test_span_count_changes_say_which_span_of_the_window_each_count_changed_in(wmkit_host):
    from wmkit_action_encoders.token_bag import SPAN_WEIGHT, removed_added_counts, span_count_changes

    # 8 positions, 2 spans (0-3, 4-7): row 0 moves token 6 from span 0 to span 1; row 1 adds a 9 in span 1
    before = torch.tensor([[5, 6, 7, 8, 1, 1, 0, 0], [5, 6, 7, 8, 1, 1, 0, 0]])
    after = torch.tensor([[5, 7, 8, 1, 6, 1, 0, 0], [5, 6, 7, 8, 1, 9, 1, 0]])
    got = span_count_changes(before, after, 0, 10, 2)
    want = torch.zeros(2, 20)
    want[0, 6 * 2 + 0], want[0, 6 * 2 + 1] = -1, 1  # token 6 left span 0 for span 1
    want[0, 7 * 2 + 0], want[0, 8 * 2 + 0] = 0, 0  # 7 and 8 moved within span 0
    want[0, 1 * 2 + 0], want[0, 1 * 2 + 1] = 1, -1  # a 1 moved from position 4 to 3
    want[1, 9 * 2 + 1] = 1  # the added 9; the 1 pushed to position 6 stays in span 1; padding never counts
    torch.testing.assert_close(got, SPAN_WEIGHT * want)
    # summed over the spans: the count change the bag features see
    counts = removed_added_counts(before, after, 0, 10)
    torch.testing.assert_close(got.view(2, 10, 2).sum(2) / SPAN_WEIGHT, counts[:, 10:] - counts[:, :10])
    # hashed like the counts: bucket t mod buckets
    torch.testing.assert_close(span_count_changes(before, after, 0, 4, 2),
                               torch.stack([got.view(2, 10, 2)[:, k::4].sum(1) for k in range(4)], dim=1).view(2, 8))


def test_position_bins_widen_the_linear_features_the_ridge_start_fits(wmkit_host):
    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__with_vector=False,
                        model__action__positions=True, model__action__position_bins=4)
    encoder = model.action_encoder
    assert encoder.counts.in_features == (3 + 4) * VOCAB
    before, after, actions = batch()
    features = encoder.linear_features(ActionInputs(vector=actions, before=before, after=after))
    assert features.shape == (len(before), (3 + 4) * VOCAB)
    from wmkit_action_encoders.token_bag import span_count_changes
    torch.testing.assert_close(features[:, 3 * VOCAB:], span_count_changes(before, after, encoder.pad_id, VOCAB, 4))

def test_the_mlp_head_is_silent_until_fit_and_reads_target_before(wmkit_host):
    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__with_vector=False,
                        model__action__positions=True)
    encoder = model.action_encoder
    assert encoder.reads_state and encoder.counts.in_features == 3 * VOCAB
    before, after, actions = batch()
    state = torch.randn(len(before), 16)
    inputs = ActionInputs(vector=actions, before=before, after=after, state=state)
    with torch.no_grad():
        encoder.counts.weight.normal_()
        linear = encoder.counts(encoder.linear_features(inputs)) + encoder.bias
        torch.testing.assert_close(encoder(inputs), linear)
        encoder.set_linear(encoder.counts.weight.T.clone(), encoder.bias.clone(), residual_rms=0.25)
        assert encoder.head_scale.item() == 0.25
        encoder.head[2].weight.normal_()
        # the head: s · MLP(c · target(before), linear / s), with c = head_state_scale
        want = linear + 0.25 * encoder.head(torch.cat([10.0 * state, linear / 0.25], dim=1))
        torch.testing.assert_close(encoder(inputs), want)
        # the model fills the state in from the prediction's base, whatever the caller passed
        torch.testing.assert_close(model.embed_action(inputs.on(None), state), want)
        torch.testing.assert_close(model.embed_action(inputs.on(torch.zeros_like(state)), state), want)
    assert {id(p) for p in encoder.residual_parameters()} == {id(p) for p in encoder.head.parameters()}
    assert _warm_model(wmkit_host).action_encoder.residual_parameters() == []
    with pytest.raises(WmkitError, match="reads target"):
        encoder(inputs.on(None))


def test_an_action_encoder_that_reads_target_before_needs_predictions_from_it(wmkit_host):
    with pytest.raises(RecipeError, match='model.predictor.start = "target_before"'):
        build(tiny(model__action__name="token_bag", model__action__head="mlp"), wmkit_host)


def test_mlp_warm_start_fits_what_ridge_leaves_and_is_reproducible(wmkit_host):
    from wmkit.warm_start import warm_start_action_encoder

    def fitted(steps):
        model = _warm_model(wmkit_host, model__action__head="mlp", model__action__init_pairs=80,
                            model__action__positions=True,
                            model__action__init_steps=steps, model__action__head_hidden=64)
        fit = warm_start_action_encoder(model, _Pairs(n=96, seed=3), np.arange(90), seed=0,
                                        device=torch.device("cpu"))
        return model, fit

    model, fit = fitted(150)
    # the fit lowers the squared error that ridge left on the same pairs, and the untrained model is
    # target(before) + the fitted embedding (checked inside the warm start; recomputed here)
    assert fit["residual"]["fit_mse"] < 0.8 * fit["fit_mse"] and fit["residual"]["steps"] == 150
    assert model.action_encoder.head_scale.item() == pytest.approx(fit["fit_mse"] ** 0.5, rel=1e-5)
    data = _Pairs(n=96, seed=3)
    rows = np.sort(np.random.default_rng(0).choice(np.arange(90), size=80, replace=False))
    model.eval()
    with torch.no_grad():
        inputs = ActionInputs(*(torch.from_numpy(a[rows]) for a in (data.actions, data.before, data.after)))
        emb = model.embed(inputs.before, inputs.after, inputs.vector)
        change = emb.target_after - emb.target_before
        embedding = model.embed_action(inputs, emb.target_before)
        mse = float(((embedding - change) ** 2).mean())
        torch.testing.assert_close(emb.pred, emb.target_before + embedding)
    assert mse == pytest.approx(fit["residual"]["fit_mse"], rel=1e-4)
    # the same seed gives the same weights, bit for bit
    again, _ = fitted(150)
    for (name, p), q in zip(model.action_encoder.state_dict().items(), again.action_encoder.state_dict().values()):
        assert torch.equal(p, q), name


def test_init_steps_need_the_mlp_head_and_the_ridge_start(wmkit_host):
    with pytest.raises(RecipeError, match='model.action.init_steps: 10 .*head = "mlp"'):
        _warm_model(wmkit_host, model__action__init_steps=10)
    with pytest.raises(RecipeError, match='init = "ridge"'):
        _warm_model(wmkit_host, model__action__head="mlp", model__action__init="zero", model__action__init_steps=10)


def test_reverts_are_the_pairs_read_the_other_way_and_the_head_fits_them(wmkit_host):
    from wmkit.warm_start import _Pairs as FitPairs
    from wmkit.warm_start import warm_start_action_encoder

    data = _Pairs(n=96, seed=3)
    rows = np.array([0, 1, 2, 3])
    pairs = FitPairs.of(data, rows)
    both = (pairs + pairs.reverted()).inputs(np.arange(8), torch.device("cpu"))
    assert torch.equal(both.before[5], torch.from_numpy(data.after[1]).long())
    assert torch.equal(both.after[5], torch.from_numpy(data.before[1]).long())
    assert torch.equal(both.before[2], torch.from_numpy(data.before[2]).long())
    assert torch.equal(both.vector[5], torch.from_numpy(data.actions[1]).float())

    def reverted_mse(reverts):
        model = _warm_model(wmkit_host, model__action__head="mlp", model__action__init_pairs=80,
                            model__action__positions=True, model__action__init_steps=150,
                            model__action__head_hidden=64, model__action__init_reverts=reverts)
        warm_start_action_encoder(model, data, np.arange(90), seed=0, device=torch.device("cpu"))
        model.eval()
        with torch.no_grad():  # how well the head predicts each pair's revert: after -> before
            inputs = FitPairs.of(data, np.arange(90)).reverted().inputs(slice(None), torch.device("cpu"))
            emb = model.embed(inputs.before, inputs.after, inputs.vector)
            change = emb.target_after - emb.target_before
            return float(((model.embed_action(inputs, emb.target_before) - change) ** 2).mean())

    assert reverted_mse(True) < 0.9 * reverted_mse(False)


def test_init_reverts_need_the_heads_warm_start_steps(wmkit_host):
    with pytest.raises(RecipeError, match="model.action.init_reverts: .*init_steps > 0"):
        _warm_model(wmkit_host, model__action__head="mlp", model__action__init_reverts=True)


def _moved_from(moved, original, pad):
    """The (start, length, destination) of the one block move that turns ``original`` into ``moved``, by
    trying every one (pads must stay where they were)."""
    keep = original != pad
    assert np.array_equal(moved != pad, keep)
    seq, target = original[keep], moved[keep]
    n = len(seq)
    for m in range(2, max(2, n // 3) + 1):
        for i in range(n - m + 1):
            rest = np.concatenate([seq[:i], seq[i + m:]])
            for k in range(len(rest) + 1):
                if k != i and np.array_equal(np.concatenate([rest[:k], seq[i:i + m], rest[k:]]), target):
                    return i, m, k
    return None


def test_block_moves_move_one_block_of_each_window_and_keep_the_pads():
    from wmkit.warm_start import block_moves

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, size=(40, 24))
    tokens[:, 18:] = 0  # trailing pads
    tokens[5, 3:] = 0  # a window of 3 tokens: too short to move a block in
    tokens[6, 10] = 0  # a pad inside the window stays where it is
    moved = block_moves(tokens, 0, np.random.default_rng(1))
    assert np.array_equal(moved[5], tokens[5])
    for row in set(range(40)) - {5}:
        assert not np.array_equal(moved[row], tokens[row]), row
        assert _moved_from(moved[row], tokens[row], 0) is not None, row
        assert np.array_equal(np.sort(moved[row]), np.sort(tokens[row]))
    assert np.array_equal(moved, block_moves(tokens, 0, np.random.default_rng(1)))


def test_moves_are_encoded_by_the_initial_target_and_the_head_fits_them(wmkit_host):
    from wmkit.warm_start import block_moves, warm_start_action_encoder

    data = _Pairs(n=96, seed=3)

    def warm(moves):
        model = _warm_model(wmkit_host, model__action__head="mlp", model__action__init_pairs=80,
                            model__action__positions=True, model__action__init_steps=150,
                            model__action__head_hidden=64, model__action__init_moves=moves)
        fit = warm_start_action_encoder(model, data, np.arange(90), seed=0, device=torch.device("cpu"))
        return model, fit

    def moved_mse(model):
        # fresh moves of the validation rows, their targets from the untrained model's own target encoder
        before = data.before[90:]
        after = block_moves(before, 0, np.random.default_rng(7))
        model.eval()
        with torch.no_grad():
            emb = model.embed(torch.from_numpy(before), torch.from_numpy(after), torch.from_numpy(data.actions[90:]))
            inputs = ActionInputs(torch.from_numpy(data.actions[90:]), torch.from_numpy(before),
                                  torch.from_numpy(after))
            change = emb.target_after - emb.target_before
            return float(((model.embed_action(inputs, emb.target_before) - change) ** 2).mean())

    with_moves, fit = warm(2.0)
    assert fit["residual"]["moves"]["pairs"] == 160 and fit["residual"]["fit_pairs"] == 240
    without, fit0 = warm(0.0)
    assert "moves" not in fit0["residual"] and fit0["residual"]["fit_pairs"] == 80
    assert moved_mse(with_moves) < 0.9 * moved_mse(without)


def test_init_moves_need_the_heads_warm_start_steps(wmkit_host):
    with pytest.raises(RecipeError, match="model.action.init_moves: .*init_steps > 0"):
        _warm_model(wmkit_host, model__action__head="mlp", model__action__init_moves=1.0)


def test_several_heads_are_averaged_and_each_is_fit_on_its_own(wmkit_host):
    from wmkit.warm_start import _inputs

    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__head_count=3,
                        model__action__head_hidden=16, model__action__with_vector=False)
    encoder = model.action_encoder
    data = _Pairs(n=8, seed=2)
    inputs = _inputs(data, np.arange(8), torch.device("cpu"), state=torch.randn(8, encoder.dim))
    with torch.no_grad():
        encoder.counts.weight.normal_()
        for head in encoder.head:
            head[2].weight.normal_()
        encoder.head_scale.fill_(0.5)
    linear = encoder.counts(encoder.linear_features(inputs)) + encoder.bias
    x = torch.cat([encoder.state_scale * inputs.state, linear / 0.5], dim=1)
    fits = [0.5 * head(x) for head in encoder.head]
    torch.testing.assert_close(encoder(inputs), linear + sum(fits) / 3)
    change = torch.randn_like(linear)
    expected = sum(((linear + f - change) ** 2).mean() for f in fits) / 3
    torch.testing.assert_close(encoder.residual_loss(inputs, change), expected)
    # the heads start from different random first layers, so their fits differ
    assert not torch.equal(encoder.head[0][0].weight, encoder.head[1][0].weight)
    with pytest.raises(RecipeError, match="model.action.head_count: 2 heads are mlp heads"):
        _warm_model(wmkit_host, model__action__head_count=2)
    # the warm start fits them through residual_loss, and every head moves off its zero start
    from wmkit.warm_start import warm_start_action_encoder

    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__head_count=2,
                        model__action__init_pairs=80, model__action__init_steps=100, model__action__head_hidden=32)
    fit = warm_start_action_encoder(model, _Pairs(n=96, seed=3), np.arange(90), seed=0, device=torch.device("cpu"))
    assert fit["residual"]["fit_mse"] < 0.9 * fit["fit_mse"]
    assert all(head[2].weight.abs().sum() > 0 for head in model.action_encoder.head)


def test_relative_error_weighs_each_pairs_squared_error_by_its_own_change(wmkit_host):
    from wmkit.warm_start import _inputs

    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__head_count=2,
                        model__action__head_hidden=16, model__action__with_vector=False,
                        model__action__init_steps=1, model__action__init_error="relative",
                        model__action__init_error_floor=0.5)
    encoder = model.action_encoder
    inputs = _inputs(_Pairs(n=6, seed=4), np.arange(6), torch.device("cpu"), state=torch.randn(6, encoder.dim))
    with torch.no_grad():
        encoder.counts.weight.normal_()
        for head in encoder.head:
            head[2].weight.normal_()
    linear = encoder.counts(encoder.linear_features(inputs)) + encoder.bias
    fits = [encoder.head_scale * head(torch.cat([encoder.state_scale * inputs.state, linear / encoder.head_scale],
                                                 dim=1)).detach() for head in encoder.head]
    linear = linear.detach()
    # changes of very different sizes: plain MSE would hardly see the small ones
    change = torch.randn_like(linear) * torch.tensor([1e-3, 1e-2, 0.1, 1.0, 3.0, 10.0])[:, None]
    sizes = [float((c ** 2).sum()) for c in change]
    median = sorted(sizes)[2]  # torch's median of an even count is the lower middle value
    w = [1.0 / (s + 0.5 * median) for s in sizes]
    w = [x * len(w) / sum(w) for x in w]
    expected = sum(sum(wi * float(((linear[i] + f[i] - change[i]) ** 2).mean()) for i, wi in enumerate(w)) / 6
                   for f in fits) / 2
    with torch.no_grad():
        assert float(encoder.residual_loss(inputs, change)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(RecipeError, match="model.action.init_error: 'relative' .*init_steps > 0"):
        _warm_model(wmkit_host, model__action__head="mlp", model__action__init_error="relative")


def test_token_position_features_sum_each_tokens_embedding_times_its_positions(wmkit_host):
    from wmkit.layers import sinusoidal_positions

    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__head_tokens=6,
                        model__action__with_vector=False, model__action__positions=True)
    encoder = model.action_encoder
    # row 0 swaps two tokens, row 1 is its revert, row 2 changes nothing, row 3 replaces one token
    before = torch.tensor([[5, 6, 7, 8, 0], [5, 8, 7, 6, 0], [4, 4, 9, 0, 0], [1, 2, 3, 4, 5]])
    after = torch.tensor([[5, 8, 7, 6, 0], [5, 6, 7, 8, 0], [4, 4, 9, 0, 0], [1, 2, 9, 4, 5]])
    state = torch.randn(4, 16)
    inputs = ActionInputs(vector=torch.zeros(4, ACTIONS), before=before, after=after, state=state)
    with torch.no_grad():
        table = encoder.tokens.weight
        # token i sits at the target's position i + 1 (position 0 is its CLS)
        where = sinusoidal_positions(6, 16)[1:] @ encoder.token_positions.weight.T
        want = torch.zeros(4, 6)
        for row in range(4):
            for i in range(5):
                want[row] += (table[after[row, i]] - table[before[row, i]]) * where[i]
        want /= 5 ** 0.5
        got = encoder.token_position_features(inputs)
        torch.testing.assert_close(got, want)
        assert got[0].abs().sum() > 0 and got[2].abs().sum() == 0
        torch.testing.assert_close(got[1], -got[0])
        torch.testing.assert_close(got[3], (table[9] - table[3]) * where[2] / 5 ** 0.5)
        # the head reads them after target(before) and the linear embedding
        encoder.counts.weight.normal_()
        encoder.head[2].weight.normal_()
        linear = encoder.counts(encoder.linear_features(inputs)) + encoder.bias
        s = encoder.head_scale
        head_input = torch.cat([10.0 * state, linear / s, want], dim=1)
        torch.testing.assert_close(encoder(inputs), linear + s * encoder.head(head_input))
    fitted = {id(p) for p in encoder.residual_parameters()}
    assert {id(p) for p in [*encoder.head.parameters(), encoder.tokens.weight,
                            encoder.token_positions.weight]} == fitted


def test_the_warm_start_fits_the_token_position_weights_with_the_head(wmkit_host):
    from wmkit.warm_start import warm_start_action_encoder

    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__head_tokens=8,
                        model__action__init_pairs=80, model__action__init_steps=60, model__action__head_hidden=32)
    encoder = model.action_encoder
    start = encoder.tokens.weight.clone(), encoder.token_positions.weight.clone()
    fit = warm_start_action_encoder(model, _Pairs(n=96, seed=3), np.arange(90), seed=0, device=torch.device("cpu"))
    assert fit["residual"]["fit_mse"] < fit["fit_mse"]
    assert not torch.equal(encoder.tokens.weight, start[0])
    assert not torch.equal(encoder.token_positions.weight, start[1])


def test_head_tokens_need_the_mlp_head(wmkit_host):
    with pytest.raises(RecipeError, match='model.action.head_tokens: 4 .*head = "mlp"'):
        _warm_model(wmkit_host, model__action__head_tokens=4)


def test_nearest_gaps_are_the_squared_distance_to_the_nearest_other_state():
    from wmkit.warm_start import nearest_gaps

    g = torch.Generator().manual_seed(0)
    states = torch.randn(40, 8, generator=g) * 3
    states[7] = states[3]  # a token-identical twin: retrieval counts it as found, so it is no neighbour
    after = torch.cat([states[:10], states[3:4] + 1e-2, torch.randn(5, 8, generator=g)])
    want = []
    for a in after.double():
        d2 = ((states.double() - a) ** 2).sum(dim=1)
        want.append(float(d2[d2 > 1e-7 * float((states.double() ** 2).sum(dim=1).mean())].min()))
    got = nearest_gaps(after, states, chunk=4)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float32))
    assert got[10] == pytest.approx(8e-4, rel=1e-3)  # the nearest is its own source, 1e-2 away on 8 axes
    assert torch.isinf(nearest_gaps(states[:1], states[:1]))[0]


def test_gap_error_weighs_each_pairs_squared_error_by_its_nearest_gap(wmkit_host):
    from wmkit.warm_start import _inputs

    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__head_hidden=16,
                        model__action__with_vector=False, model__action__init_steps=1,
                        model__action__init_error="gap", model__action__init_error_floor=0.5)
    encoder = model.action_encoder
    assert encoder.warm_start_gaps
    inputs = _inputs(_Pairs(n=5, seed=4), np.arange(5), torch.device("cpu"), state=torch.randn(5, encoder.dim))
    with torch.no_grad():
        encoder.counts.weight.normal_()
        encoder.head[2].weight.normal_()
        pred = encoder(inputs)
        change = torch.randn_like(pred)
        gap = torch.tensor([1e-4, 1e-3, 1e-2, 1.0, 5.0])
        w = [1.0 / (float(x) + 0.5 * 1e-2) for x in gap]  # the median of five is the third
        w = [x * 5 / sum(w) for x in w]
        expected = sum(wi * float(((pred[i] - change[i]) ** 2).mean()) for i, wi in enumerate(w)) / 5
        assert float(encoder.residual_loss(inputs, change, gap)) == pytest.approx(expected, rel=1e-5)


def test_the_warm_start_passes_each_fit_pairs_gap_with_init_error_gap(wmkit_host, monkeypatch):
    from wmkit.warm_start import nearest_gaps, warm_start_action_encoder

    model = _warm_model(wmkit_host, model__action__head="mlp", model__action__init_pairs=80,
                        model__action__init_steps=3, model__action__head_hidden=16,
                        model__action__init_reverts=True, model__action__init_error="gap")
    encoder, seen = model.action_encoder, []
    loss = encoder.residual_loss
    monkeypatch.setattr(encoder, "residual_loss", lambda inputs, change, gap=None: seen.append(
        (inputs.state.clone(), change.clone(), gap)) or loss(inputs, change, gap))
    warm_start_action_encoder(model, _Pairs(n=96, seed=3), np.arange(90), seed=0, device=torch.device("cpu"))
    assert len(seen) == 3
    data = _Pairs(n=96, seed=3)
    rows = np.sort(np.random.default_rng(0).choice(np.arange(90), size=80, replace=False))
    model.eval()
    with torch.no_grad():
        emb = model.embed(torch.from_numpy(data.before[rows]), torch.from_numpy(data.after[rows]),
                          torch.from_numpy(data.actions[rows]))
    states = torch.cat([emb.target_before, emb.target_after])
    for state, change, gap in seen:  # each batch row: a pair or a revert, its gap among all 160 states
        torch.testing.assert_close(gap, nearest_gaps(state + change, states), rtol=1e-4, atol=1e-9)


def test_order_features_sum_each_moved_tokens_sinusoids_for_reorderings_only(wmkit_host):
    from wmkit_action_encoders.token_bag import order_features, order_sinusoids

    before = torch.tensor([[5, 6, 7, 8, 0], [5, 6, 7, 8, 0], [5, 6, 7, 8, 0]])
    after = torch.tensor([[5, 8, 7, 6, 0], [5, 6, 7, 9, 0], [5, 6, 7, 8, 0]])  # a swap; a count change; nothing
    table = order_sinusoids(5, 2)
    i = torch.arange(5, dtype=torch.float64)
    # two frequencies: the shortest and the longest period, sin then cos
    want_table = torch.stack([torch.sin(2 * np.pi * i / 4), torch.sin(2 * np.pi * i / 256),
                              torch.cos(2 * np.pi * i / 4), torch.cos(2 * np.pi * i / 256)], dim=1).float()
    torch.testing.assert_close(table, want_table)
    want = torch.zeros(3, 10, 4)
    want[0, 6], want[0, 8] = table[3] - table[1], table[1] - table[3]  # 6 moved from 1 to 3, 8 from 3 to 1
    torch.testing.assert_close(order_features(before, after, 0, 10, 2), want.flatten(1))
    # the revert negates them
    torch.testing.assert_close(order_features(after[:1], before[:1], 0, 10, 2), -want[:1].flatten(1))


def test_anchored_moves_begin_at_each_pairs_first_edit_and_keep_its_tokens():
    from wmkit.warm_start import anchored_moves

    before = np.concatenate([np.tile(np.arange(1, 25), (40, 1)), np.zeros((40, 4), dtype=np.int64)], axis=1)
    after = before.copy()
    after[:, 9] = 99  # every pair's first edit is at position 9
    moved = anchored_moves(before, after, 0, np.random.default_rng(0))
    for row in moved:
        changed = np.flatnonzero(row != before[0])
        assert changed[0] == 9 and sorted(row) == sorted(before[0]) and (row[24:] == 0).all()
    # a block cut at 9 leaves 10 (before[9]) elsewhere; one put in at 9 is followed, after it, by 10
    assert len({tuple(r) for r in moved}) > 20
    # no edit, or too few tokens: returned as they are
    short = np.array([[3, 4, 5, 0, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(torch.from_numpy(anchored_moves(before[:2], before[:2], 0, np.random.default_rng(1))),
                               torch.from_numpy(before[:2]))
    assert (anchored_moves(short, short + (short > 0), 0, np.random.default_rng(1)) == short).all()


def _reordering_pairs(n=96, seed=3):
    data = _Pairs(n=n, seed=seed)
    rng = np.random.default_rng(seed)
    for row in range(0, n, 4):  # every fourth pair: a reordering of its before's second half
        tail = data.before[row, 6:].copy()
        data.after[row, 6:] = tail[rng.permutation(len(tail))]
    return data


# ~180 rows of order features (the pairs' reorderings and the moves): more than 1 frequency's 100 features, so
# summed into the Gram matrix, and fewer than 2 frequencies' 200, so solved in the dual form
@pytest.mark.parametrize("frequencies, solve", [(1, "gram"), (2, "dual")])
def test_the_order_fit_is_ridge_on_reorderings_and_anchored_moves_gated_on_unchanged_counts(wmkit_host, frequencies,
                                                                                             solve):
    from wmkit.encode import encode_states
    from wmkit.warm_start import ORDER_ALPHA, ORDER_MOVES, anchored_moves, warm_start_action_encoder
    from wmkit_action_encoders.token_bag import order_features

    model = _warm_model(wmkit_host, model__action__positions=True, model__action__order_frequencies=frequencies,
                        model__action__init_pairs=80)
    data = _reordering_pairs()
    fit = warm_start_action_encoder(model, data, np.arange(90), seed=0, device=torch.device("cpu"))
    width = 2 * frequencies * VOCAB
    assert fit["order"]["features"] == width and fit["order"]["solve"] == solve
    assert (fit["order"]["pairs"] + fit["order"]["moves"] > width) == (solve == "gram")
    rows = np.sort(np.random.default_rng(0).choice(np.arange(90), size=80, replace=False))
    encoder = model.action_encoder
    reorderings = sum((data.after[r] != data.before[r]).any() and sorted(data.after[r]) == sorted(data.before[r])
                      for r in rows)
    assert fit["order"]["pairs"] == reorderings > 15 and fit["order"]["moves"] > 0
    # the same fit, independently: the pairs' and anchored moves' order features against what the ridge part left
    src = np.repeat(np.arange(len(rows)), ORDER_MOVES)
    moved = anchored_moves(data.before[rows][src], data.after[rows][src], 0, np.random.default_rng([0, 3]))
    keep = (moved != data.before[rows][src]).any(axis=1)
    before = np.concatenate([data.before[rows], data.before[rows][src][keep]])
    after = np.concatenate([data.after[rows], moved[keep]])
    model.eval()
    with torch.no_grad():
        tb = torch.from_numpy(encode_states(model, before, target=True))
        ta = torch.from_numpy(encode_states(model, after, target=True))
        inputs = ActionInputs(vector=torch.zeros(len(before), ACTIONS), before=torch.from_numpy(before),
                              after=torch.from_numpy(after), state=tb)
        linear = encoder.counts(encoder.linear_features(inputs)) + encoder.bias
        x = order_features(inputs.before, inputs.after, 0, VOCAB, frequencies).double()
    seen = x.abs().sum(1) > 0
    x, y = x[seen], (ta - tb - linear).double()[seen]
    want = torch.linalg.solve(x.T @ x + ORDER_ALPHA * torch.eye(x.shape[1], dtype=torch.float64), x.T @ y)
    torch.testing.assert_close(encoder.order.weight.T.double(), want, rtol=1e-3, atol=1e-5)
    # only reorderings get the order part: a pair whose counts change is embedded as before the fit
    with torch.no_grad():
        emb = encoder(inputs)
        torch.testing.assert_close(emb[~seen], linear[~seen])
        assert not torch.allclose(emb[seen], linear[seen])


def test_order_frequencies_need_the_ridge_start(wmkit_host):
    with pytest.raises(RecipeError, match='model.action.order_frequencies: .*init = "ridge"'):
        build(tiny(model__action__name="token_bag", model__action__order_frequencies=4), wmkit_host)


def test_the_warm_start_log_line_names_every_stage_of_the_fit():
    from wmkit.warm_start import describe

    ridge = {"alpha": 10.0, "features": 4096, "fit_mse": 2.5e-4, "seconds": 3.2, "pairs": 5}
    assert describe(ridge) == "warm start: ridge penalty 10 on 4096 count features; 3s in all"
    full = {**ridge, "order": {"alpha": 3.0, "features": 21888, "moves": 33085, "pairs": 523, "seconds": 507.5,
                               "solve": "gram"},
            "residual": {"steps": 12000, "fit_mse": 1.2e-4}, "seconds": 873.0}
    assert describe(full) == ("warm start: ridge penalty 10 on 4096 count features; then reordering expert on 523 "
                              "reorderings + 33085 synthetic moves (21888 features, penalty 3, gram solve, 508s); "
                              "then 12000 steps of the nonlinear part: fit MSE 0.00025 -> 0.00012; 873s in all")
