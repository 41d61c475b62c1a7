"""The built-in auxiliary losses (none, pred, ntxent, cos_align) against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wmkit.components import AuxInputs, AuxLoss


@pytest.fixture
def build(wmkit_host):
    def make(name, **options):
        return wmkit_host.resolve("aux_loss", name)(dim=0, options=options)

    return make


def t(x, grad=False):
    return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=grad)


def inputs(loop_state, target, actions=None, action_embedding=None, predictor=None, loop=1):
    n, d = loop_state.shape
    return AuxInputs(loop=loop, loop_state=loop_state, final_state=loop_state, target=target,
                     action_embedding=action_embedding if action_embedding is not None else torch.zeros(n, d, dtype=torch.float64),
                     actions=actions if actions is not None else torch.ones(n, 3, dtype=torch.float64),
                     predictor=predictor or (lambda s, a: s + a))


def np_unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_registered_classes_and_schemas(wmkit_host):
    from wmkit_aux_losses.plugin import NTXentOptions

    for name in ("none", "pred", "ntxent", "cos_align"):
        component = wmkit_host.get("aux_loss", name)
        cls = component.load()
        assert issubclass(cls, AuxLoss)
        if name == "ntxent":  # the options class the loss reads is the one registered
            assert component.options_type is NTXentOptions and component.options == NTXentOptions.fields
        else:
            assert component.options == {}


def test_none_is_zero(build):
    rng = np.random.default_rng(0)
    assert build("none")(inputs(t(rng.normal(size=(4, 3))), t(rng.normal(size=(4, 3)))))["loss"].item() == 0.0


def test_pred_goes_through_the_shared_predictor_without_projector(build):
    rng = np.random.default_rng(1)
    state, target, act = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    weight = rng.normal(size=(4, 4))
    calls = []

    def predictor(s, a):
        calls.append((s, a))
        return torch.tanh(s @ t(weight) + a)

    loop_state = t(state, grad=True)
    out = build("pred")(inputs(loop_state, t(target), action_embedding=t(act), predictor=predictor))
    prediction = np.tanh(state @ weight + act)
    expected = ((np_unit(prediction) - np_unit(target)) ** 2).mean()
    assert out["loss"].item() == pytest.approx(expected, rel=1e-10)
    assert len(calls) == 1 and calls[0][0] is loop_state  # the loop readout itself, not a copy
    out["loss"].backward()
    assert loop_state.grad is not None and loop_state.grad.abs().sum() > 0  # not detached


def test_cos_align(build):
    rng = np.random.default_rng(2)
    state, target = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    cos = (np_unit(state) * np_unit(target)).sum(1)
    assert build("cos_align")(inputs(t(state), t(target)))["loss"].item() == pytest.approx(1 - cos.mean(), rel=1e-10)


def test_ntxent_crafted_batch_with_hand_derived_value(build):
    # deltas (target - loop state): rows 0,1 = e1 (action A); rows 2,3 = e2, -e2 (action B);
    # row 4 = 0 (action A: dropped, so not a positive of rows 0,1); row 5 = e3 (action C: no
    # positive, so not an anchor, but present in every denominator).
    e = np.eye(4)
    deltas = np.stack([e[0], e[0], e[1], -e[1], np.zeros(4), e[2]])
    base = np.random.default_rng(3).normal(size=(6, 4))
    a, b, c = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    actions = t([a, a, b, b, a, c])
    tau = 0.5
    out = build("ntxent", temperature=tau)(inputs(t(base), t(base + deltas), actions=actions))
    # anchor 0 (and 1): positive logit 1/tau among {1/tau, 0, 0, 0}
    first = math.log(1 + 3 * math.exp(-1 / tau))
    # anchor 2 (and 3): positive logit -1/tau among {-1/tau, 0, 0, 0}
    second = math.log(1 + 3 * math.exp(1 / tau))
    assert out["loss"].item() == pytest.approx((first + second) / 2, rel=1e-9)
    assert out["anchors"].item() == 4


def np_ntxent(deltas, actions, tau, threshold, floor=1e-4):
    keep = np.linalg.norm(deltas, axis=1) > floor
    d, a = np_unit(deltas[keep]), actions[keep]
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-6)
    n = len(d)
    logits = d @ d.T / tau
    losses = []
    for i in range(n):
        others = [k for k in range(n) if k != i]
        positives = [j for j in others if a[i] @ a[j] > threshold]
        if not positives:
            continue
        log_denominator = np.log(np.exp(logits[i, others]).sum())
        losses.append(-np.mean([logits[i, j] - log_denominator for j in positives]))
    return np.mean(losses), len(losses)


def test_ntxent_matches_numpy_on_random_batch_and_sends_gradient(build):
    rng = np.random.default_rng(4)
    prototypes = rng.normal(size=(3, 5))
    actions = prototypes[rng.integers(0, 3, size=16)] + 0.05 * rng.normal(size=(16, 5))
    state, target = rng.normal(size=(16, 6)), rng.normal(size=(16, 6))
    expected, anchors = np_ntxent(target - state, actions, 0.07, 0.9)
    loop_state = t(state, grad=True)
    out = build("ntxent")(inputs(loop_state, t(target), actions=t(actions)))
    assert out["loss"].item() == pytest.approx(expected, rel=1e-9)
    assert out["anchors"].item() == anchors > 0
    out["loss"].backward()
    assert torch.isfinite(loop_state.grad).all() and loop_state.grad.abs().sum() > 0


def test_ntxent_without_positives_is_zero_and_finite(build):
    rng = np.random.default_rng(5)
    state, target = t(rng.normal(size=(3, 4)), grad=True), t(rng.normal(size=(3, 4)))
    out = build("ntxent")(inputs(state, target, actions=t(np.eye(3))))
    assert out["loss"].item() == 0.0 and out["anchors"].item() == 0
    out["loss"].backward()  # still part of the graph, no error
