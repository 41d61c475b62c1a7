"""wmkit.metrics against independent computations on crafted embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wmkit import metrics


def rng(seed=0):
    return np.random.default_rng(seed)


# -- effective rank -----------------------------------------------------------------------------
def test_uncentred_erank_collapsed_set_is_one():
    row = rng().normal(size=16)
    x = np.tile(row, (50, 1))
    assert metrics.effective_rank_uncentred(x) == pytest.approx(1.0, abs=1e-6)


def test_uncentred_erank_orthogonal_set_is_dimension():
    d = 12
    q, _ = np.linalg.qr(rng(1).normal(size=(d, d)))
    assert metrics.effective_rank_uncentred(q * 3.0) == pytest.approx(d, rel=1e-9)


def test_uncentred_erank_matches_formula_and_counts_offset():
    x = rng(2).normal(size=(40, 8)) + 5.0  # large common offset: one dominant direction
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum()
    expected = math.exp(-sum(v * math.log(v) for v in p))
    assert metrics.effective_rank_uncentred(x) == pytest.approx(expected, rel=1e-10)
    # Centring removes the offset, so the centred form sees a more isotropic spread.
    assert metrics.effective_rank_centred(x).erank > metrics.effective_rank_uncentred(x)


def test_uncentred_erank_row_normalisation_option():
    x = rng(3).normal(size=(30, 6)) * np.linspace(0.1, 10, 30)[:, None]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = np.linalg.svd(u, compute_uv=False)
    p = s / s.sum()
    assert metrics.effective_rank_uncentred(x, normalize_rows=True) == pytest.approx(
        math.exp(-(p * np.log(p)).sum()), rel=1e-10)


def test_centred_erank_formula_and_normalisation():
    x = rng(4).normal(size=(25, 10)) * np.arange(1, 11)
    c = x - x.mean(axis=0)
    s2 = np.linalg.svd(c, compute_uv=False) ** 2
    p = s2 / s2.sum()
    expected = math.exp(-(p * np.log(p)).sum())
    got = metrics.effective_rank_centred(x)
    assert got.erank == pytest.approx(expected, rel=1e-10)
    assert got.normalised == pytest.approx(expected / min(25 - 1, 10), rel=1e-10)


def test_centred_erank_normalises_by_n_minus_one():
    # A simplex: N = D points e_i; centred they span exactly N - 1 equal directions, so a
    # min(N, D) normalisation would report (N-1)/N; min(N-1, D) reports 1.
    d = 6
    got = metrics.effective_rank_centred(np.eye(d))
    assert got.erank == pytest.approx(d - 1, rel=1e-9)
    assert got.normalised == pytest.approx(1.0, rel=1e-9)


def test_centred_erank_collapsed_set_is_zero():
    x = np.tile(rng(5).normal(size=8).astype(np.float32), (100, 1))
    got = metrics.effective_rank_centred(x)
    assert got.erank == 0.0 and got.normalised == 0.0


def test_top_singular_share():
    x = rng(6).normal(size=(200, 5)) * np.array([10.0, 1, 1, 1, 1])
    c = x - x.mean(axis=0)
    s2 = np.linalg.svd(c, compute_uv=False) ** 2
    assert metrics.top_singular_share(x) == pytest.approx(s2[0] / s2.sum(), rel=1e-10)
    assert metrics.top_singular_share(x) > 0.8
    assert metrics.top_singular_share(np.eye(4), centred=False) == pytest.approx(0.25)


def test_accepts_torch_tensors_including_bf16():
    x = torch.randn(20, 4)
    assert metrics.effective_rank_uncentred(x) == pytest.approx(metrics.effective_rank_uncentred(x.numpy()))
    assert metrics.mean_cos(x.bfloat16(), x.bfloat16()) == pytest.approx(1.0, abs=1e-6)


# -- KNN ---------------------------------------------------------------------------------------
def test_knn_perfect_predictor_hits_at_one():
    t = rng(7).normal(size=(300, 16))
    acc = metrics.knn_accuracy(t * 2.0, t)
    assert acc == {1: 1.0, 5: 1.0, 10: 1.0, 50: 1.0}


def test_knn_shuffled_predictor_near_random():
    r = rng(8)
    n = 2000
    t = r.normal(size=(n, 32))
    pred = t[r.permutation(n)]
    acc = metrics.knn_accuracy(pred, t, ks=(1, 10, 50))
    for k in (10, 50):
        base = metrics.random_baseline(k, n)
        sd = math.sqrt(base * (1 - base) / n)
        assert abs(acc[k] - base) < 5 * sd + 1e-9, (k, acc[k], base)
    assert acc[1] < 0.01


def test_knn_matches_bruteforce_ranks():
    r = rng(9)
    t = r.normal(size=(120, 8))
    q = t + r.normal(size=t.shape) * 1.5
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    tn = t / np.linalg.norm(t, axis=1, keepdims=True)
    sims = qn @ tn.T
    rank = (sims > np.diag(sims)[:, None]).sum(axis=1)  # how many beat the true item
    acc = metrics.knn_accuracy(q, t, ks=(1, 3, 10))
    for k in (1, 3, 10):
        assert acc[k] == pytest.approx((rank < k).mean())
    ranks = metrics.knn_ranks(q, t, 10)
    assert np.array_equal(ranks, np.where(rank < 10, rank, 10))


def test_knn_k_beyond_gallery_and_baseline():
    t = rng(10).normal(size=(7, 3))
    assert metrics.knn_accuracy(-t, t, ks=(50,))[50] == 1.0
    assert metrics.random_baseline(50, 7) == 1.0
    assert metrics.random_baseline(5, 5000) == pytest.approx(0.001)
    assert metrics.random_baseline(1, 128) == pytest.approx(1 / 128)


# -- cosines -----------------------------------------------------------------------------------
def _cos(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_cross_cosines_against_full_matrix():
    r = rng(11)
    p, t = r.normal(size=(40, 6)), r.normal(size=(40, 6))
    full = _cos(p[:, None, :], t[None, :, :])
    mask = ~np.eye(40, dtype=bool)
    got = metrics.cross_cosines(p, t)
    assert got["diag"] == pytest.approx(np.diag(full).mean(), rel=1e-10)
    assert got["off"] == pytest.approx(full[mask].mean(), rel=1e-10)
    assert got["gap"] == pytest.approx(np.diag(full).mean() - full[mask].mean(), rel=1e-10)


def test_cosine_family():
    r = rng(12)
    on_b, on_a, tg_b, tg_a, pred = (r.normal(size=(30, 5)) for _ in range(5))
    assert metrics.mean_cos(pred, tg_a) == pytest.approx(_cos(pred, tg_a).mean())
    assert metrics.delta_cos(pred, tg_a, on_b) == pytest.approx(_cos(pred - on_b, tg_a - on_b).mean())
    assert metrics.copy_cos_reference(on_b, tg_a) == pytest.approx(_cos(on_b, tg_a).mean())
    assert metrics.copy_cos_paper(tg_b, tg_a) == pytest.approx(_cos(tg_b, tg_a).mean())
    assert metrics.lift(0.7, 0.3) == pytest.approx(0.4)
    # copy_cos can go negative, so lift can exceed 1 (reference §5, docs/reference.md#s5)
    assert metrics.lift(0.5, -0.6) > 1.0


def test_mean_offdiag_self_cos():
    x = rng(13).normal(size=(25, 4))
    full = _cos(x[:, None], x[None])
    assert metrics.mean_offdiag_self_cos(x) == pytest.approx(full[~np.eye(25, dtype=bool)].mean(), rel=1e-10)
    assert metrics.mean_offdiag_self_cos(np.ones((5, 3))) == pytest.approx(1.0)


def test_std_of_l2_normalized():
    d = 64
    x = rng(14).normal(size=(5000, d))
    assert metrics.std_of_l2_normalized(x) == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert metrics.std_of_l2_normalized(np.tile(x[:1], (100, 1))) == pytest.approx(0.0, abs=1e-12)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert metrics.std_of_l2_normalized(x) == pytest.approx(u.std(axis=0).mean())


# -- geometry ----------------------------------------------------------------------------------
def test_signal_ratio():
    b = np.array([[3.0, 4.0], [1.0, 0.0]])
    a = np.array([[3.0, 5.0], [1.0, 2.0]])  # ratios 1/5 and 2/1
    assert metrics.signal_ratio(b, a) == pytest.approx((0.2 + 2.0) / 2)


def test_linear_probe_majority_baseline_on_imbalanced_labels():
    r = rng(15)
    n = 500
    y = (r.random(n) < 0.1).astype(int)  # 90% class 0
    x = r.normal(size=(n, 8))  # features carry no information
    res = metrics.linear_probe_accuracy(x, y, seed=3, epochs=50)
    _, test = metrics.split_indices(n, 3)
    expected_major = max((y[test] == 0).mean(), (y[test] == 1).mean())
    assert res.majority_baseline == pytest.approx(expected_major)
    assert res.n_test == len(test) == 100 and res.n_train == 400 and res.n_classes == 2
    assert res.accuracy <= res.majority_baseline + 0.05  # noise features cannot beat the baseline much


def test_linear_probe_learns_separable_labels_and_drops_missing():
    r = rng(16)
    x = r.normal(size=(400, 5))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, 2, 7)  # arbitrary class ids
    y[:20] = -1  # missing labels are dropped
    res = metrics.linear_probe_accuracy(x, y, seed=0)
    assert res.n_train + res.n_test == 380
    assert res.accuracy > 0.95


def test_linear_probe_split_is_deterministic_per_seed():
    a = metrics.split_indices(100, 5)
    b = metrics.split_indices(100, 5)
    c = metrics.split_indices(100, 6)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert len(np.intersect1d(a[0], a[1])) == 0 and len(a[0]) + len(a[1]) == 100
    r = rng(17)
    x, y = r.normal(size=(200, 4)), r.integers(0, 3, 200)
    assert metrics.linear_probe_accuracy(x, y, seed=1, epochs=20) == metrics.linear_probe_accuracy(x, y, seed=1, epochs=20)


def test_linear_delta_probe_exact_linear_map_scores_one():
    r = rng(18)
    x = r.normal(size=(300, 6))
    w = r.normal(size=(6, 4))
    assert metrics.linear_delta_probe(x, x @ w + 1.0) == pytest.approx(1.0, abs=1e-4)
    noise = r.normal(size=(300, 4))
    assert abs(metrics.linear_delta_probe(x, noise)) < 0.2


def test_straightness_and_consecutive_delta_cos():
    # Trajectory 0 has edits d0, d1, d2; trajectory 1 has one edit; trajectory 2 has two edits.
    d = np.array([
        [1.0, 0.0],   # t0
        [1.0, 0.5],   # t0: kappa = 0.5 / 1 = 0.5 < 1
        [-1.0, 0.0],  # t0: kappa = |(-2, -0.5)| / |(1, 0.5)| > 1
        [5.0, 5.0],   # t1 alone
        [0.0, 2.0],   # t2
        [0.0, 1.0],   # t2: kappa = 1 / 2 < 1
    ])
    traj = np.array([0, 0, 0, 1, 2, 2])
    pairs = [(0, 1), (1, 2), (4, 5)]
    kappa = [np.linalg.norm(d[j] - d[i]) / np.linalg.norm(d[i]) for i, j in pairs]
    assert metrics.straightness(d, traj) == pytest.approx(np.mean([k < 1 for k in kappa]))
    assert metrics.straightness(d, traj) == pytest.approx(2 / 3)
    cos = [_cos(d[j], d[i]) for i, j in pairs]
    assert metrics.consecutive_delta_cos(d, traj) == pytest.approx(np.mean(cos))
    assert metrics.trajectory_pair_count(traj) == 3
    assert math.isnan(metrics.straightness(d[:1], traj[:1]))


def test_loop_straightness():
    z0 = np.zeros((2, 2))
    z1 = np.array([[1.0, 0.0], [1.0, 0.0]])
    z2 = np.array([[2.0, 0.0], [1.0, 1.0]])  # row 0 straight (cos 1), row 1 turns 90° (cos 0)
    z3 = np.array([[2.0, 1.0], [1.0, 3.0]])  # row 0 turns 90°, row 1 straight
    assert metrics.loop_straightness([z0, z1, z2]) == [pytest.approx(0.5)]
    assert metrics.loop_straightness([z0, z1, z2, z3]) == [pytest.approx(0.5), pytest.approx(0.5)]
    assert metrics.loop_straightness([z0, z1]) == []


# -- retrieval ---------------------------------------------------------------------------------
def test_mrr_first_relevant_at_rank_three_contributes_one_third():
    ranking = np.array([[4, 2, 7, 1, 0, 3, 5, 6, 8, 9]])
    relevant = np.zeros((1, 10), dtype=bool)
    relevant[0, [7, 9]] = True  # gallery 7 is at rank 3, gallery 9 at rank 10
    assert metrics.mrr_at_10(ranking, relevant) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranking, relevant, 1) == 0.0
    assert metrics.recall_at_k(ranking, relevant, 3) == 1.0


def test_mrr_and_recall_over_queries_with_predicate():
    ranking = np.array([
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],   # first relevant (even >= 2): rank 3
        [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 2],  # relevant only at rank 11: outside top 10
        [6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],    # rank 1
    ])
    pred = lambda q, g: g % 2 == 0 and g >= 2  # noqa: E731
    expected = (1 / 3 + 0 + 1) / 3
    assert metrics.mrr_at_10(ranking, pred) == pytest.approx(expected)
    assert metrics.recall_at_k(ranking, pred, 1) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranking, pred, 5) == pytest.approx(2 / 3)
    # the matrix form agrees with the predicate form
    rel = np.array([[pred(q, g) for g in range(20)] for q in range(3)])
    assert metrics.mrr_at_10(ranking, rel) == pytest.approx(expected)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        metrics.effective_rank_uncentred(np.zeros(5))
    with pytest.raises(ValueError):
        metrics.cross_cosines(np.zeros((3, 2)), np.zeros((4, 2)))
