"""What do ``wmkit sweep --jobs`` and torchrun buy on this machine? Ratios measured in one run.

1. The same sweep (2 grid points x 2 seeds, ``--steps`` steps each, audited at the end) with
   ``--jobs 1`` and with ``--jobs 2``, each into a fresh directory after one warm-up preparation of
   the data: wall times and their ratio. Every run uses one torch thread (``train.threads=1``), so the
   ratio is that of running runs side by side (on a loaded machine, two OpenMP threads per run can
   be far slower than one: a thread waits for its starved partner at every parallel region).
2. One training step of the same model at the same global batch: a single process with one thread,
   and ``torchrun --nproc_per_node 2`` (gloo, one thread per rank, half the batch each): mean seconds
   per step over ``--ddp-steps`` steps after 3 warm-up steps, on random token batches.

    python bench/scale_speed.py [--data SOURCE] [--steps 20] [--batch 8] [--max-len 64] [--ddp-steps 20]

The default data is this repository's own git history (``git:.``), as the quickstart uses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = "recipes/loops3_auxpred_vicreg.toml"

STEP_SCRIPT = r"""
import json, sys, time
import torch
from wmkit import distributed
from wmkit.model import build_world_model
from wmkit.plugins import get_host
from wmkit.recipe import load_recipe
from wmkit.seed import seed_everything

world = distributed.from_environment()
threads, steps, overrides = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
torch.set_num_threads(threads)
host = get_host()
recipe = load_recipe("loops3_auxpred_vicreg", overrides=overrides, host=host, environ={})
v = recipe.values
batch = distributed.local_batch_size(recipe.options.optim.batch_size, world)
if world.distributed:
    distributed.start(world, "cpu")
seed_everything(0)
model = build_world_model(v, vocab_size=684, pad_id=0, action_dim=15, resolve=host.resolve)
forward = model
if world.distributed:
    distributed.global_batch_norm(model)
    forward = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
L = recipe.options.data.max_len
g = torch.Generator().manual_seed(world.rank)
times = []
for i in range(3 + steps):
    before, after = torch.randint(1, 684, (batch, L), generator=g), torch.randint(1, 684, (batch, L), generator=g)
    actions = torch.randn(batch, 15, generator=g)
    distributed.barrier()
    t0 = time.perf_counter()
    loss = forward(before, after, actions)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.update_target()
    distributed.barrier()
    if i >= 3:
        times.append(time.perf_counter() - t0)
if world.is_main:
    print("RESULT " + json.dumps({"step_s": sum(times) / len(times), "world": world.size, "threads": threads,
                                  "local_batch": batch}))
distributed.stop()
"""


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def _step_time(prefix: list[str], script: Path, threads: int, steps: int, overrides: list[str], env: dict) -> dict:
    done = subprocess.run([*prefix, str(script), str(threads), str(steps), *overrides], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not line:
        raise SystemExit(f"step timing failed: {done.stderr[-2000:]}")
    return json.loads(line[0][len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="git:.")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="global batch (sweep runs and the step timing)")
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--ddp-steps", type=int, default=20)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="wmkit-scale-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    env.setdefault("WMKIT_CACHE_DIR", str(tmp / "cache"))
    overrides = [f"data.max_len={args.max_len}", f"optim.batch_size={args.batch}", "train.eval_every=10",
                 "train.save_every=10", "train.threads=1", "eval.probe_size=0"]
    wmkit = [sys.executable, "-m", "wmkit"]
    # warm the data cache once so that neither sweep pays for preparation
    subprocess.run([*wmkit, "train", RECIPE, "--data", args.data, "--out", str(tmp / "warm"), *_sets(overrides),
                    "--set", "train.steps=1", "--no-live"], cwd=REPO, env=env, check=True, capture_output=True)
    walls = {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        done = subprocess.run([*wmkit, "sweep", RECIPE, "--grid", "loss.aux.weight=0.1,0.3", "--seeds", "42,43",
                               "--steps", str(args.steps), "--data", args.data, *_sets(overrides), "--jobs", str(jobs),
                               "--out", str(tmp / f"sweep-jobs{jobs}"), "--no-live"], cwd=REPO, env=env,
                              capture_output=True, text=True)
        walls[jobs] = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(f"sweep --jobs {jobs} failed: {done.stderr[-2000:]}")
    step_overrides = [f"data.max_len={args.max_len}", f"optim.batch_size={args.batch}"]
    script = tmp / "step.py"
    script.write_text(STEP_SCRIPT)
    cpus = os.cpu_count() or 1
    single_one = _step_time([sys.executable], script, 1, args.ddp_steps, step_overrides, env)
    ddp = _step_time([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
                     script, 1, args.ddp_steps, step_overrides, env)
    load = os.getloadavg()
    print(f"sweeps in {tmp} (wmkit sweep report {tmp / 'sweep-jobs2'})")
    print(f"machine: {cpus} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)")
    print(f"sweep 2 points x 2 seeds x {args.steps} steps (batch {args.batch}, {args.max_len} tokens, data {args.data}):")
    print(f"  --jobs 1: {walls[1]:.1f} s   --jobs 2: {walls[2]:.1f} s   speed-up x{walls[1] / walls[2]:.2f}")
    print(f"one training step at global batch {args.batch} x {args.max_len} tokens (mean of {args.ddp_steps}):")
    print(f"  1 process, 1 thread:   {single_one['step_s'] * 1e3:.1f} ms")
    print(f"  torchrun 2 processes x 1 thread (gloo, local batch {ddp['local_batch']}): {ddp['step_s'] * 1e3:.1f} ms"
          f"   speed-up over 1 process x{single_one['step_s'] / ddp['step_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
