"""The speed benchmarks' arithmetic: FLOP counts against formulas, the training FLOPs' batch
extrapolation, the suite's verdicts, and `wmkit bench all` end to end on its cheapest section."""

import json

import pytest
import torch
import torch.nn.functional as F

from wmkit.bench.flops import FlopCount


def test_flop_count_matches_the_matmul_and_cpu_attention_formulas():
    x, w = torch.randn(7, 5), torch.randn(3, 5)
    with FlopCount() as count:
        F.linear(x, w)
    assert count.total == 2 * 7 * 5 * 3

    b, h, s, d = 2, 3, 11, 8
    q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
    with torch.inference_mode(), FlopCount() as count:  # the CPU flash kernel, absent from torch's table
        F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach())
    forward = 4 * b * h * s * s * d  # q kᵀ and P v
    assert count.total == forward
    with FlopCount() as count:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    assert count.total == forward + 2 * forward  # backward: four matmuls of the forward's size


def test_training_flops_extend_linearly_in_the_batch(wmkit_host):
    from wmkit.bench.speed import step_flops
    from wmkit.model import build_world_model
    from wmkit.recipe import load_recipe

    v = load_recipe("loops3_auxpred_vicreg", overrides=["data.max_len=16"], host=wmkit_host, environ={}).values
    model = build_world_model(v, vocab_size=50, pad_id=0, action_dim=15, resolve=wmkit_host.constructor)
    domain = type("D", (), {"vocab": type("V", (), {"size": 50})(), "action_dim": 15})()
    counted = step_flops(model, domain, 16, 6, "fp32")
    before, after = torch.randint(0, 50, (6, 16)), torch.randint(0, 50, (6, 16))
    from wmkit.cpu_dropout import stock_attention

    with FlopCount() as count, stock_attention():
        model.train()(before, after, torch.rand(6, 15))["loss"].backward()
    assert counted == pytest.approx(count.total, rel=1e-9)


def test_figures_say_pass_fail_or_dash():
    from wmkit.bench.suite import Figure

    assert Figure("s", "n", "1").verdict == "—"
    assert Figure("s", "n", "1", "≥ 2", False).verdict == "FAIL"
    assert Figure("s", "n", "3", "≥ 2", True).verdict == "pass"


def test_bench_all_prints_the_ceilings_and_says_why_bf16_is_skipped(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import wmkit.bench.speed as speed
    from wmkit.cli import cli

    # the ceilings as measured on a CPU without bf16 units (measuring them costs ~15 s there)
    monkeypatch.setattr(speed, "matmul_ceiling", lambda n=2048, repeats=5, precision="fp32":
                        {"fp32": 120e9, "bf16": 8e9}[precision])
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "all", "--skip", "train", "--skip", "prepare", "--skip", "audit",
                                      "--skip", "latency", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["value"] for r in rows[:2]] == ["120.0 GFLOP/s", "8.0 GFLOP/s"]
    assert rows[2]["value"] == "skipped" and "below fp32's" in rows[2]["note"]
    assert "fp32 matmul ceiling" in result.output
