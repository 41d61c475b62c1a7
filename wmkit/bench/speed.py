"""Training-speed benchmark: sequences/s, achieved FLOP/s against a measured matmul ceiling, peak memory.

Each configuration runs in a fresh subprocess so that its peak resident memory is its own. All
numbers come from one invocation on one machine, so the ratios between them are meaningful.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

#: (batch, tokens) configurations the issue asks for
DEFAULT_CONFIGS = ((32, 128), (128, 512))


#: training precisions the benchmark can time
PRECISIONS = ("fp32", "bf16")


def matmul_ceiling(n: int = 2048, repeats: int = 5, precision: str = "fp32", budget_s: float = 20.0) -> float:
    """Best FLOP/s of an n×n product ``x @ wᵀ`` (the layout every ``nn.Linear`` runs), fp32 or bf16,
    on this process's threads (2n³ FLOPs per product). Stops repeating after ``budget_s`` seconds:
    CPUs without bf16 instructions emulate bf16 at a few GFLOP/s."""
    import torch
    import torch.nn.functional as F

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    start = time.perf_counter()
    F.linear(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        F.linear(a, b)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return 2 * n**3 / best


def step_flops(model, domain, tokens: int, batch: int, precision: str) -> float:
    """FLOPs of one training step of ``batch`` sequences by :class:`wmkit.bench.flops.FlopCount`, for
    the standard algorithm (stock attention, no recomputation).

    Counted on batches of 2 and 4 and extended linearly to ``batch``: every term of the built-in
    objectives is affine in the batch size, and small batches keep the count's memory small.
    """
    import copy

    import torch

    from wmkit.bench.flops import FlopCount
    from wmkit.cpu_dropout import stock_attention

    counted = {}
    for b in (2, 4):
        probe = copy.deepcopy(model).train()
        before = torch.randint(0, domain.vocab.size, (b, tokens))
        after = torch.randint(0, domain.vocab.size, (b, tokens))
        with FlopCount() as count, stock_attention(), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            probe(before, after, torch.rand(b, domain.action_dim))["loss"].backward()
        counted[b] = count.total
    return counted[2] + (counted[4] - counted[2]) / 2 * (batch - 2)


def _worker(recipe_name: str, batch: int, tokens: int, steps: int, precision: str, overrides: list[str]) -> dict:
    import torch

    from wmkit.model import build_world_model
    from wmkit.plugins import get_host
    from wmkit.recipe import load_recipe
    from wmkit.runtime import make_domain
    from wmkit.seed import seed_everything

    host = get_host()
    recipe = load_recipe(recipe_name, overrides=[f"data.max_len={tokens}", f"optim.batch_size={batch}",
                                                 *overrides], host=host, environ={})
    domain = make_domain(recipe, host)
    seed_everything(0)
    v = recipe.values
    model = build_world_model(v, vocab_size=domain.vocab.size, pad_id=domain.vocab.pad_id,
                              action_dim=domain.action_dim, resolve=host.constructor)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.options.optim.lr)
    before = torch.randint(0, domain.vocab.size, (batch, tokens))
    after = torch.randint(0, domain.vocab.size, (batch, tokens))
    actions = torch.rand(batch, domain.action_dim)

    def step():
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(before, after, actions)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        model.update_target()

    step()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best = min(times)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before the FLOP count below
    flops = step_flops(model, domain, tokens, batch, precision)
    return {"batch": batch, "tokens": tokens, "precision": precision, "steps_timed": steps, "step_seconds": best,
            "step_seconds_mean": sum(times) / len(times), "sequences_per_s": batch / best,
            "flops_per_step": flops, "flops_per_s": flops / best, "peak_rss_gb": peak_kib / 1024**2,
            "threads": torch.get_num_threads(), "ceiling_flops_per_s": matmul_ceiling(precision=precision)}


def run(recipe_name: str = "loops3_auxpred_vicreg", configs=DEFAULT_CONFIGS, steps: int = 3,
        overrides: list[str] = (), precision: str = "fp32") -> list[dict]:
    """Run every configuration in its own subprocess; return one result dict per configuration.

    The ceiling is measured in the same subprocess right after the timed steps, in the same precision."""
    results = []
    for batch, tokens in configs:
        cmd = [sys.executable, "-m", "wmkit.bench.speed", "--worker", recipe_name, str(batch), str(tokens),
               str(steps), precision, *overrides]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if out.returncode != 0:
            raise RuntimeError(f"benchmark worker ({batch}, {tokens}) failed:\n{out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["flops_fraction_of_ceiling"] = result["flops_per_s"] / result["ceiling_flops_per_s"]
        results.append(result)
    return results


if __name__ == "__main__":  # the subprocess side of run()
    if sys.argv[1:2] == ["--worker"]:
        name, b, t, s, precision, *rest = sys.argv[2:]
        print(json.dumps(_worker(name, int(b), int(t), int(s), precision, rest)))
