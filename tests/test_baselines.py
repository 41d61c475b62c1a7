"""The audit's trivial baselines, each against an independent computation."""

import math
from collections import Counter

import numpy as np
import pytest

from wmkit import linear_edit
from wmkit.audit import baselines
from wmkit.edits import token_bags


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_wilson_interval_matches_the_formula():
    # p = 0.8, n = 10, z = 1.96: centre (0.8 + 0.192) / 1.384, half 1.96 * sqrt(0.016 + 0.0096) / 1.384
    low, high = baselines.wilson_interval(8, 10, z=1.96)
    centre, half = (0.8 + 1.96 ** 2 / 20) / (1 + 1.96 ** 2 / 10), 1.96 * math.sqrt(0.016 + 1.96 ** 2 / 400) / (1 + 1.96 ** 2 / 10)
    assert low == pytest.approx(centre - half) and high == pytest.approx(centre + half)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert baselines.wilson_interval(0, 10)[0] == 0.0 and baselines.wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_beats_copy_counts_pairs_closer_than_copy():
    r = np.random.default_rng(0)
    tb, ta = r.normal(size=(50, 8)), r.normal(size=(50, 8))
    pred = r.normal(size=(50, 8))
    expected = np.sum(unit(pred) * unit(ta), 1) > np.sum(unit(tb) * unit(ta), 1)
    out = baselines.beats_copy(pred, tb, ta)
    assert out["wins"] == int(expected.sum()) and out["n"] == 50 and out["rate"] == pytest.approx(expected.mean())
    assert out["low"] <= out["rate"] <= out["high"]
    # copy itself never beats copy; identical targets cannot be beaten
    assert baselines.beats_copy(tb, tb, ta)["rate"] == 0.0
    assert baselines.beats_copy(ta, ta, ta)["rate"] == 0.0


def test_copy_baselines_knn_and_ratios():
    r = np.random.default_rng(1)
    ta = r.normal(size=(40, 16))
    tb = ta + 0.01 * r.normal(size=ta.shape)  # nothing much changes: copy retrieves perfectly
    online = r.normal(size=ta.shape)  # an unrelated encoder
    pred = r.normal(size=ta.shape)
    out = baselines.copy_baselines(pred=pred, online_before=online, target_before=tb, target_after=ta, ks=(1, 5))
    assert out["copy_knn_at_k"] == {"1": 1.0, "5": 1.0}
    sims = unit(pred) @ unit(ta).T
    own = np.diag(sims)
    expected1 = float(np.mean([(sims[i] > own[i]).sum() == 0 for i in range(40)]))
    assert out["knn_ratio_to_copy"]["1"] == pytest.approx(expected1)
    assert out["online_copy_knn_at_k"]["1"] < 0.5


def test_distractor_gallery_separates_copying_from_predicting():
    r = np.random.default_rng(2)
    ta, tb = r.normal(size=(30, 8)), r.normal(size=(30, 8))
    copying = baselines.distractor_gallery(tb, tb, ta)
    assert copying == {"gallery_size": 60, "nearest_own_after": 0.0, "nearest_own_before": 1.0,
                       "nearest_other": pytest.approx(0.0)}
    right = baselines.distractor_gallery(ta, tb, ta)
    assert right["nearest_own_after"] == 1.0 and right["nearest_own_before"] == 0.0


def test_ridge_fit_recovers_a_linear_edit_and_matches_the_normal_equations():
    r = np.random.default_rng(3)
    x = r.poisson(1.0, size=(400, 20)).astype(float)
    w = r.normal(size=(20, 6))
    tb = r.normal(size=(400, 6))
    ta = tb + x @ w + 0.5
    fit = linear_edit.fit_linear_edit(x, tb, ta, alphas=(1e-6,))
    xc = x - x.mean(0)
    expected = np.linalg.solve(xc.T @ xc + 1e-6 * np.eye(20), xc.T @ ((ta - tb) - (ta - tb).mean(0)))
    assert np.allclose(fit["weights"], expected, atol=1e-6) and np.allclose(fit["weights"], w, atol=1e-5)
    assert np.allclose(fit["bias"], 0.5, atol=1e-5)
    # the penalty is chosen on an inner split of the training pairs only
    fit = linear_edit.fit_linear_edit(x, tb, ta)
    assert set(fit["inner_mse"]) == {str(a) for a in linear_edit.RIDGE_ALPHAS} and fit["alpha"] == 0.1


def test_linear_edit_baseline_evaluates_on_the_audited_pairs():
    r = np.random.default_rng(4)
    w = r.normal(size=(10, 8)) * 3
    xtr, xva = r.poisson(1.0, size=(300, 10)).astype(float), r.poisson(1.0, size=(60, 10)).astype(float)
    tbtr, tbva = r.normal(size=(300, 8)), r.normal(size=(60, 8))
    tatr, tava = tbtr + xtr @ w, tbva + xva @ w
    out = baselines.linear_edit_baseline(train_features=xtr, train_target_before=tbtr, train_target_after=tatr,
                                         features=xva, target_before=tbva, target_after=tava, pred=tbva, ks=(1,))
    assert out["linear_edit_knn_at_k"]["1"] == 1.0
    assert out["linear_edit"]["beats_copy"]["rate"] == 1.0
    assert out["linear_edit"]["model_closer_rate"] == 0.0  # the "model" here is copy
    assert out["linear_edit"]["fit_pairs"] == 300


def test_target_drift():
    r = np.random.default_rng(5)
    a = r.normal(size=(20, 4))
    assert baselines.target_drift(a, a)["mean_cos_to_initial"] == pytest.approx(1.0)
    assert baselines.target_drift(a, -a)["mean_cos_to_initial"] == pytest.approx(-1.0)


def test_token_bags_are_multiset_differences():
    before = np.array([[5, 6, 6, 7, 0, 0], [9, 9, 9, 9, 9, 9]])
    after = np.array([[5, 6, 8, 8, 7, 0], [9, 9, 9, 9, 9, 9]])
    bags = token_bags(before, after, pad_id=0, vocab_size=10)
    for i in range(2):
        cb, ca = Counter(t for t in before[i] if t), Counter(t for t in after[i] if t)
        removed, added = cb - ca, ca - cb
        assert bags[i, :10].tolist() == [removed.get(t, 0) for t in range(10)]
        assert bags[i, 10:].tolist() == [added.get(t, 0) for t in range(10)]
    assert bags.shape == (2, 20) and not bags[1].any()
    # a large vocabulary is bucketed modulo the bucket count
    big = token_bags(np.array([[3000, 1]]), np.array([[5, 1]]), pad_id=1, vocab_size=5000, buckets=2048)
    assert big.shape == (1, 4096) and big[0, 952] == 1 and big[0, 2048 + 5] == 1 and big.sum() == 2


def test_identical_states_count_a_twin_as_found_and_bound_plain_knn():
    # six pairs, after states: rows 0, 1 and 2 identical, 3 and 4 identical, 5 alone -> 3 groups
    tokens = np.array([[1, 2], [1, 2], [1, 2], [3, 4], [3, 4], [5, 6]])
    r = np.random.default_rng(1)
    state = {tuple(t): r.normal(size=8) for t in map(tuple, tokens)}
    target_after = np.stack([state[tuple(t)] for t in tokens])  # identical states, identical targets
    perfect = target_after + 1e-6 * r.normal(size=target_after.shape)
    # a query that lands on the wrong group for rows 3 and 4 (on row 5's state)
    wrong = perfect.copy()
    wrong[3] = wrong[4] = state[(5, 6)]
    out = baselines.identical_states(tokens, target_after, {"perfect": perfect, "wrong": wrong})
    assert out["ceiling_knn_at_1"] == pytest.approx(3 / 6)
    assert out["pairs_with_identical_after"] == pytest.approx(5 / 6)
    assert out["knn_at_1"]["perfect"] == pytest.approx(1.0)
    assert out["knn_at_1"]["wrong"] == pytest.approx(4 / 6)
    # plain KNN@1 of the perfect query cannot pass the ceiling: twins tie
    plain = baselines.knn_at(perfect, target_after, [1])["1"]
    assert plain <= out["ceiling_knn_at_1"] + 1e-9


def test_ridge_inner_fit_from_the_whole_minus_its_hold_out_equals_a_fit_on_the_rest():
    # fit_linear_edit reads the inner fit's sums off the whole's; they must give the direct fit's weights
    r = np.random.default_rng(8)
    x = r.poisson(2.0, size=(300, 12)).astype(float) + 5.0  # a large mean: the centring must hold
    y = r.normal(size=(300, 4))
    rest, out = np.arange(60, 300), np.arange(60)
    direct = linear_edit.ridge(x[rest], y[rest], 0.7)
    xc, yc = x[rest] - x[rest].mean(0), y[rest] - y[rest].mean(0)
    w = np.linalg.solve(xc.T @ xc + 0.7 * np.eye(12), xc.T @ yc)
    moments = linear_edit._Moments.of(x, y) - linear_edit._Moments.of(x[out], y[out])
    assert np.allclose(direct[0], w) and np.allclose(moments.ridge(0.7)[0], w)
    assert np.allclose(moments.ridge(0.7)[1], y[rest].mean(0) - x[rest].mean(0) @ w)
