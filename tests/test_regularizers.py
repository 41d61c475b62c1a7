"""The built-in regularizers (none, vicreg, sigreg) against independent numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wmkit.components import Regularizer


@pytest.fixture
def build(wmkit_host):
    def make(name, **options):
        return wmkit_host.resolve("regularizer", name)(dim=0, options=options)

    return make


def sample(n=12, d=5, seed=0, scale=None):
    z = np.random.default_rng(seed).normal(size=(n, d))
    return z * (np.asarray(scale) if scale is not None else 1.0)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def np_off_diagonal_cov(z):
    c = np.cov(z, rowvar=False, ddof=1)
    return ((c ** 2).sum() - (np.diag(c) ** 2).sum()) / z.shape[1]


def test_registered_classes_and_schemas(wmkit_host):
    from wmkit_regularizers.plugin import SIGRegOptions, VICRegOptions

    read = {"none": None, "vicreg": VICRegOptions, "sigreg": SIGRegOptions}  # the options class each one reads
    for name in ("none", "vicreg", "sigreg"):
        component = wmkit_host.get("regularizer", name)
        cls = component.load()
        assert issubclass(cls, Regularizer)
        if read[name] is not None:
            assert component.options_type is read[name] and component.options == read[name].fields
        else:
            assert component.options == {}


def test_none_is_zero(build):
    out = build("none")(t(sample()))
    assert out["loss"].item() == 0.0


def test_vicreg_reference_form(build):
    z = sample(scale=[0.2, 0.7, 1.0, 2.0, 0.05])
    std = z.std(axis=0, ddof=1)
    variance = np.maximum(0.0, 1.0 - std).mean()
    covariance = np_off_diagonal_cov(z)
    out = build("vicreg")(t(z))
    assert out["variance"].item() == pytest.approx(variance, rel=1e-10)
    assert out["covariance"].item() == pytest.approx(covariance, rel=1e-10)
    assert out["loss"].item() == pytest.approx(variance + 0.04 * covariance, rel=1e-10)
    assert "invariance" not in out


def test_vicreg_weights_eps_and_invariance(build):
    z, paired = sample(seed=1), sample(seed=2)
    reg = build("vicreg", variance_weight=25.0, covariance_weight=1.0, invariance_weight=25.0, eps=1e-4)
    out = reg(t(z), t(paired))
    std = np.sqrt(z.var(axis=0, ddof=1) + 1e-4)
    variance = np.maximum(0.0, 1.0 - std).mean()
    invariance = ((z - paired) ** 2).mean()
    expected = 25 * variance + np_off_diagonal_cov(z) + 25 * invariance
    assert out["invariance"].item() == pytest.approx(invariance, rel=1e-10)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-10)
    # invariance is reported but not added at its default weight 0
    out = build("vicreg")(t(z), t(paired))
    assert out["loss"].item() == pytest.approx(out["variance"].item() + 0.04 * out["covariance"].item(), rel=1e-10)


def np_sigreg(z, directions, pairs=None):
    u = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    p = u @ z.T  # [M, N]
    h = (p - p.mean(axis=1, keepdims=True)) / p.std(axis=1, ddof=1, keepdims=True)
    n = z.shape[0]
    term1 = 2.0 / n * np.exp(-h ** 2 / 2).sum(axis=1)
    if pairs is None:
        gaps = h[:, :, None] - h[:, None, :]
        term2 = np.exp(-gaps ** 2 / 4).mean(axis=(1, 2))
    else:
        first, second = pairs
        gaps = np.take_along_axis(h, first, 1) - np.take_along_axis(h, second, 1)
        term2 = np.exp(-gaps ** 2 / 4).mean(axis=1)
    return np.abs(term1 - term2 - math.sqrt(2)).mean()


def test_sigreg_exact_pairs_with_seeded_directions(build):
    z = sample(n=20, d=6, seed=3)
    reg = build("sigreg", directions=16)
    torch.manual_seed(123)
    got = reg(torch.tensor(z, dtype=torch.float32))
    torch.manual_seed(123)
    directions = torch.randn(16, 6).double().numpy()
    expected = np_sigreg(z, directions)
    assert got["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert got["epps_pulley"].item() == pytest.approx(expected, rel=1e-5)


def test_sigreg_sampled_pairs_above_the_exact_limit(build):
    z = sample(n=30, d=4, seed=4)
    reg = build("sigreg", directions=8, exact_up_to=10, sampled_pairs=50)
    torch.manual_seed(7)
    got = reg(torch.tensor(z, dtype=torch.float32))["loss"].item()
    torch.manual_seed(7)
    directions = torch.randn(8, 4).double().numpy()
    first = torch.randint(0, 30, (8, 50)).numpy()
    second = torch.randint(0, 30, (8, 50)).numpy()
    assert got == pytest.approx(np_sigreg(z, directions, (first, second)), rel=1e-5)


def test_sigreg_draws_fresh_directions_each_call(build):
    z = torch.tensor(sample(n=16, d=8, seed=5), dtype=torch.float32)
    reg = build("sigreg", directions=4)
    torch.manual_seed(0)
    first, second = reg(z)["loss"].item(), reg(z)["loss"].item()
    assert first != second


def test_sigreg_gaussian_batch_sits_near_one_over_root_two(build):
    # A property of the reference's formula (documented in the plugin): not 0 at the Gaussian.
    torch.manual_seed(0)
    z = torch.randn(500, 8)
    value = build("sigreg", directions=32)(z)["loss"].item()
    assert value == pytest.approx(1 / math.sqrt(2), abs=0.03)


def test_regularizers_send_gradients(build):
    for name in ("vicreg", "sigreg"):
        z = torch.tensor(sample(n=10, d=4, seed=6), requires_grad=True)
        build(name)(z)["loss"].backward()
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0, name
