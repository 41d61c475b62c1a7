"""The CPU dropout paths against the stock formulas: keep rate, scaling, attention values and gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from wmkit import cpu_dropout
from wmkit.cpu_dropout import Dropout, attention_with_dropout, dropout, keep_mask


def test_keep_mask_rate_and_seeding():
    torch.manual_seed(0)
    a = keep_mask((1000, 1001), 0.1)
    torch.manual_seed(0)
    b = keep_mask((1000, 1001), 0.1)
    assert a.dtype == torch.bool and a.shape == (1000, 1001)
    assert torch.equal(a, b)  # the default generator governs it
    n = a.numel()
    rate = a.float().mean().item()
    assert abs(rate - 0.9) < 4 * math.sqrt(0.9 * 0.1 / n)  # binomial: within 4 standard errors
    assert keep_mask((10_000,), 0.0).all() and not keep_mask((10_000,), 1.0 - 2**-33).any()


def test_dropout_scales_kept_elements_and_is_identity_in_eval():
    x = torch.randn(300, 300)
    y = dropout(x, 0.25, training=True)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    assert dropout(x, 0.25, training=False) is x
    layer = Dropout(0.25)
    assert layer.state_dict() == {} and "p=0.25" in repr(layer)
    layer.eval()
    assert torch.equal(layer(x), x)


def _reference(q, k, v, keep_keys, p, keep):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if keep_keys is not None:
        scores = scores.masked_fill(~keep_keys, -math.inf)
    return (scores.softmax(-1) * keep / (1 - p)) @ v


@pytest.mark.parametrize("masked", [False, True])
def test_attention_with_dropout_matches_the_formula_and_its_gradients(masked, monkeypatch):
    monkeypatch.setattr(cpu_dropout, "CHUNK_BYTES", 2 * 3 * 7 * 7 * 4)  # several chunks over the batch
    torch.manual_seed(1)
    b, h, s, d = 5, 3, 7, 4
    q, k, v = (torch.randn(b, h, s, d, dtype=torch.float64, requires_grad=True) for _ in range(3))
    keep = torch.rand(b, h, s, s) > 0.3
    keep_keys = None
    if masked:
        keep_keys = torch.ones(b, 1, 1, s, dtype=torch.bool)
        keep_keys[:, :, :, 4:] = False
        keep_keys[0, :, :, 2:] = False
    got = attention_with_dropout(q, k, v, keep_keys, 0.3, keep=keep)
    want = _reference(q, k, v, keep_keys, 0.3, keep)
    assert torch.allclose(got, want, atol=1e-10)
    upstream = torch.randn_like(got)
    grads = torch.autograd.grad((got * upstream).sum(), (q, k, v))
    wants = torch.autograd.grad((want * upstream).sum(), (q, k, v))
    for g, w in zip(grads, wants):
        assert torch.allclose(g, w, atol=1e-9)


def test_attention_with_all_kept_equals_sdpa_over_one_minus_p():
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 4, 9, 8) for _ in range(3))
    keep = torch.ones(2, 4, 9, 9, dtype=torch.bool)
    got = attention_with_dropout(q, k, v, None, 0.1, keep=keep)
    assert torch.allclose(got, F.scaled_dot_product_attention(q, k, v) / 0.9, atol=1e-5)


def test_attention_with_dropout_under_bf16_autocast_runs_forward_and_backward():
    torch.manual_seed(3)
    x = torch.randn(2, 4, 16, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = k = v = x * 1.0
        out = attention_with_dropout(q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16), None, 0.1)
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all()
