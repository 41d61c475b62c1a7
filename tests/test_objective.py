"""The loss terms of wmkit.objective against independent numpy computations
(reference §4, docs/reference.md#s4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from wmkit import objective


def arrays(n=7, d=5, seed=0, count=3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)) for _ in range(count)]


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def np_cos(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_normalized_mse_is_two_minus_two_cos_over_d():
    a, b, _ = arrays()
    expected = np.mean(2.0 - 2.0 * np_cos(a, b)) / a.shape[1]
    assert objective.normalized_mse(t(a), t(b)).item() == pytest.approx(expected, rel=1e-10)
    # and, written out element by element, the element-mean squared error of the unit rows
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    assert objective.normalized_mse(t(a), t(b)).item() == pytest.approx(((ua - ub) ** 2).mean(), rel=1e-10)


def test_pred_projector_mse_projects_each_side_with_its_own_projector():
    a, b, _ = arrays(d=4)
    w_pred = np.random.default_rng(5).normal(size=(4, 4))
    w_target = np.random.default_rng(6).normal(size=(4, 4))
    pred_proj, target_proj = nn.Linear(4, 4, bias=False).double(), nn.Linear(4, 4, bias=False).double()
    with torch.no_grad():
        pred_proj.weight.copy_(t(w_pred))
        target_proj.weight.copy_(t(w_target))
    pa, pb = a @ w_pred.T, b @ w_target.T
    expected = np.mean(2.0 - 2.0 * np_cos(pa, pb)) / 4
    got = objective.pred_projector_mse(t(a), t(b), pred_proj, target_proj).item()
    assert got == pytest.approx(expected, rel=1e-10)
    # without projectors: the same MSE on the raw embeddings
    assert objective.pred_projector_mse(t(a), t(b)).item() == pytest.approx(
        np.mean(2.0 - 2.0 * np_cos(a, b)) / 4, rel=1e-10)


def test_pred_cosine_is_one_minus_mean_cos_and_differs_from_projector_form_by_d_over_two():
    a, b, _ = arrays(d=6)
    cos_form = objective.pred_cosine(t(a), t(b)).item()
    assert cos_form == pytest.approx(1.0 - np_cos(a, b).mean(), rel=1e-10)
    # (2 - 2cos)/D = (2/D)(1 - cos): the reference's number is the paper's scaled by 2/D
    # (defect D9, docs/reference.md#d9)
    assert objective.normalized_mse(t(a), t(b)).item() == pytest.approx(cos_form * 2 / 6, rel=1e-10)


def test_direction_loss():
    dp, dt, _ = arrays(seed=1)
    assert objective.direction_loss(t(dp), t(dt)).item() == pytest.approx(1.0 - np_cos(dp, dt).mean(), rel=1e-10)
    # identical deltas give 0; opposite deltas give 2
    assert objective.direction_loss(t(dp), t(dp)).item() == pytest.approx(0.0, abs=1e-12)
    assert objective.direction_loss(t(dp), t(-dp)).item() == pytest.approx(2.0, abs=1e-12)


def test_magnitude_loss_with_eps_inside_the_log():
    dp, dt, _ = arrays(seed=2)
    eps = 1e-6
    expected = np.mean((np.log(np.linalg.norm(dp, axis=1) + eps) - np.log(np.linalg.norm(dt, axis=1) + eps)) ** 2)
    assert objective.magnitude_loss(t(dp), t(dt)).item() == pytest.approx(expected, rel=1e-10)
    # scale-only mismatch: predicting 2x the true delta costs log(2)^2, direction ignored
    assert objective.magnitude_loss(t(2 * dt), t(-dt)).item() == pytest.approx(math.log(2) ** 2, rel=1e-6)
    # a zero delta stays finite
    zero = torch.zeros(3, 5, dtype=torch.float64)
    assert math.isfinite(objective.magnitude_loss(zero, t(dt[:3])).item())


def test_covariance_loss_unbiased_off_diagonal_over_d():
    (z,) = arrays(n=9, d=4, seed=3, count=1)
    c = np.cov(z, rowvar=False, ddof=1)
    expected = (c ** 2).sum() - (np.diag(c) ** 2).sum()
    assert objective.covariance_loss(t(z)).item() == pytest.approx(expected / 4, rel=1e-10)


def test_covariance_loss_zero_for_decorrelated_dimensions():
    # two columns with orthogonal centred vectors: zero off-diagonal covariance
    z = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert objective.covariance_loss(t(z)).item() == pytest.approx(0.0, abs=1e-12)


def test_variance_hinge_without_and_with_eps():
    (z,) = arrays(n=8, d=6, seed=4, count=1)
    z = z * np.array([0.1, 0.5, 0.9, 1.5, 3.0, 0.0])  # last column collapsed
    std = z.std(axis=0, ddof=1)
    assert objective.variance_hinge(t(z)).item() == pytest.approx(np.maximum(0, 1 - std).mean(), rel=1e-10)
    std_eps = np.sqrt(z.var(axis=0, ddof=1) + 1e-4)
    assert objective.variance_hinge(t(z), eps=1e-4).item() == pytest.approx(np.maximum(0, 1 - std_eps).mean(), rel=1e-10)


def test_delta_terms():
    dp, dt, _ = arrays(seed=5)
    assert objective.delta_mse(t(dp), t(dt)).item() == pytest.approx(((dp - dt) ** 2).mean(), rel=1e-10)
    assert objective.delta_cosine(t(dp), t(dt)).item() == pytest.approx(1.0 - np_cos(dp, dt).mean(), rel=1e-10)
