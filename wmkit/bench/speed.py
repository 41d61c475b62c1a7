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


def matmul_ceiling(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n×n matmul on this process's threads (2n³ FLOPs per product)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _worker(recipe_name: str, batch: int, tokens: int, steps: int, overrides: list[str]) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

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
        loss = model(before, after, actions)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        model.update_target()

    counter = FlopCounterMode(display=False)
    with counter:
        step()  # also the warm-up step
    flops = counter.get_total_flops()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best = min(times)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"batch": batch, "tokens": tokens, "steps_timed": steps, "step_seconds": best,
            "step_seconds_mean": sum(times) / len(times), "sequences_per_s": batch / best,
            "flops_per_step": flops, "flops_per_s": flops / best, "peak_rss_gb": peak_kib / 1024**2,
            "threads": torch.get_num_threads(), "ceiling_flops_per_s": matmul_ceiling()}


def run(recipe_name: str = "loops3_auxpred_vicreg", configs=DEFAULT_CONFIGS, steps: int = 3,
        overrides: list[str] = ()) -> list[dict]:
    """Run every configuration in its own subprocess; return one result dict per configuration."""
    results = []
    for batch, tokens in configs:
        cmd = [sys.executable, "-m", "wmkit.bench.speed", "--worker", recipe_name, str(batch), str(tokens),
               str(steps), *overrides]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if out.returncode != 0:
            raise RuntimeError(f"benchmark worker ({batch}, {tokens}) failed:\n{out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["flops_fraction_of_ceiling"] = result["flops_per_s"] / result["ceiling_flops_per_s"]
        results.append(result)
    return results


if __name__ == "__main__":  # the subprocess side of run()
    if sys.argv[1:2] == ["--worker"]:
        name, b, t, s, *rest = sys.argv[2:]
        print(json.dumps(_worker(name, int(b), int(t), int(s), rest)))
