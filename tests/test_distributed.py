"""Data parallelism with torchrun and gloo on CPU: the gathered statistics' gradients, the losses of a
2-process run against a 1-process run on the same rows, exact resumption after a kill, bad world sizes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wmkit.testing import write_commitpack_jsonl

from conftest import descendants

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

#: the paper recipe (VICReg, aux pred on loops 1-2, projectors with batch norm), CPU-test sized; no dropout:
#: masks are drawn per row, so a 2-process run cannot draw the 1-process run's masks
TINY = ["train.steps=60", "optim.batch_size=8", "eval.probe_size=8", "data.max_len=32", "data.min_changed_tokens=0",
        "data.val_percent=30", "train.threads=1", "model.dim=32", "model.heads=2", "model.dropout=0.0",
        "train.eval_every=10", "train.save_every=10", "model.projector.hidden=32", "model.action.hidden=32"]


def _sets(items):
    return [arg for item in items for arg in ("--set", item)]


def rows(n=60):
    return [{"old_file": f"m{i}.py", "new_file": f"m{i}.py", "old_contents": f"x = {i}\nz = {i * 3}\n",
             "new_contents": f"x = {i}\ny = x * {i}\nz = {i * 3} + y\n"} for i in range(n)]


def step_rows(run_dir: Path) -> dict[int, dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines) if "event" not in r}


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, WMKIT_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")


GRADIENT_SCRIPT = r"""
import json, sys
import torch
import torch.distributed as dist
from wmkit import distributed
from wmkit.model import build_world_model
from wmkit.plugins import get_host
from wmkit.recipe import load_recipe
from wmkit.seed import seed_everything

world = distributed.from_environment()
distributed.start(world, "cpu")
host = get_host()
recipe = load_recipe("loops3_auxpred_vicreg", overrides=sys.argv[2:], host=host, environ={})
v = recipe.values
B = v["optim"]["batch_size"]
g = torch.Generator().manual_seed(7)
before = torch.randint(1, 50, (B, 16), generator=g)
after = torch.randint(1, 50, (B, 16), generator=g)
actions = torch.randn(B, 7, generator=g)


def build():
    seed_everything(3)
    return build_world_model(v, vocab_size=50, pad_id=0, action_dim=7, resolve=host.resolve)


# the gathered regularizer alone: rank r's gradient of R(gather(z)), averaged by DDP, is dR/dz_r
reg = build().regularizer
z = torch.randn(B, 32, generator=g)
local = z[world.rank * (B // 2):(world.rank + 1) * (B // 2)].clone().requires_grad_(True)
reg(distributed.gather_batch(local))["loss"].backward()
gathered_grad = local.grad / world.size

all_reg_grads = [torch.empty_like(gathered_grad) for _ in range(world.size)]
dist.all_gather(all_reg_grads, gathered_grad.contiguous())
out = {}
if world.rank == 0:
    full = z.clone().requires_grad_(True)
    reg(full)["loss"].backward()
    out["reg_grad_err"] = float((torch.cat(all_reg_grads) - full.grad).abs().max())
    out["reg_grad_scale"] = float(full.grad.abs().max())

# the whole world model under DDP on this rank's half of the batch, against one process on all of it:
# the paper recipe (VICReg, aux pred), then SIGReg with NT-Xent (same SIGReg directions on every rank)
VARIANTS = {"vicreg_pred": [], "sigreg_ntxent": ["regularizer.name=sigreg", "loss.aux.type=ntxent",
                                                 "loss.aux.pos_threshold=0.0"]}
ddp_results = {}
for name, extra in VARIANTS.items():
    v = load_recipe("loops3_auxpred_vicreg", overrides=[*sys.argv[2:], *extra], host=host, environ={}).values
    model = distributed.global_batch_norm(build())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    half = slice(world.rank * (B // 2), (world.rank + 1) * (B // 2))
    terms = ddp(before[half], after[half], actions[half])
    terms["loss"].backward()
    ddp_results[name] = (distributed.mean_over_ranks(terms),
                         {n: p.grad for n, p in model.named_parameters() if p.grad is not None})
distributed.stop()  # the one-process references below must not gather
for name, extra in VARIANTS.items():
    v = load_recipe("loops3_auxpred_vicreg", overrides=[*sys.argv[2:], *extra], host=host, environ={}).values
    logged, grads = ddp_results[name]
    if world.rank == 0:
        single = build()
        single_terms = single(before, after, actions)
        single_terms["loss"].backward()
        out[name] = {
            "terms": {k: [float(logged[k]), float(single_terms[k])] for k in ("loss", "reg", "aux", "cov", "pred")},
            "param_grad_err": max(float((grads[n] - p.grad).abs().max()) for n, p in single.named_parameters()
                                  if p.grad is not None),
            "param_grad_scale": max(float(p.grad.abs().max()) for p in single.parameters() if p.grad is not None),
            "params_with_grad": [len(grads), sum(p.grad is not None for p in single.parameters())]}
if world.rank == 0:
    open(sys.argv[1], "w").write(json.dumps(out))
"""


def test_gathered_gradients_match_one_process(tmp_path, env):
    script = tmp_path / "grad.py"
    script.write_text(GRADIENT_SCRIPT)
    out = tmp_path / "out.json"
    sets = ["optim.batch_size=8", "model.dim=32", "model.heads=2", "model.dropout=0.0", "data.max_len=16",
            "model.projector.hidden=32", "model.action.hidden=32"]
    done = subprocess.run([*TORCHRUN, str(script), str(out), *sets], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["reg_grad_scale"] > 1e-4 and r["reg_grad_err"] < 1e-6 * max(1.0, r["reg_grad_scale"])
    for name in ("vicreg_pred", "sigreg_ntxent"):
        v = r[name]
        for term, (ddp, single) in v["terms"].items():
            assert ddp == pytest.approx(single, rel=1e-5, abs=1e-7), (name, term)
        assert v["terms"]["aux"][1] > 0 and v["terms"]["reg"][1] > 0, name
        assert v["params_with_grad"][0] == v["params_with_grad"][1] > 0
        assert v["param_grad_err"] < 1e-5 * max(1.0, v["param_grad_scale"]), name


def _train(prefix, out, env, *extra, wait=True, data):
    cmd = [*prefix, "-m", "wmkit", "train", "recipes/loops3_auxpred_vicreg.toml", "--data", f"jsonl:{data}",
           "--out", str(out), *_sets(TINY), "--no-live", *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, _errors(done.stderr)
    return done


def _errors(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if line.startswith("error:")) or stderr[-3000:]


def test_two_process_run_matches_one_process_and_resumes_exactly_after_kill(tmp_path, env):
    data = write_commitpack_jsonl(tmp_path / "rows.jsonl", rows())
    _train([sys.executable], tmp_path / "single", env, "--early-stop", "40", data=data)
    _train(TORCHRUN, tmp_path / "ddp", env, "--logger", "tensorboard", data=data)
    single, ddp = step_rows(tmp_path / "single"), step_rows(tmp_path / "ddp")
    # only rank 0 logs: one event file, each step once
    assert len(list((tmp_path / "ddp" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "ddp" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 61))
    assert sorted(ddp) == list(range(1, 61))
    for step in range(1, 41):
        for term in ("loss", "pred", "reg", "reg_variance", "reg_covariance", "cov", "aux"):
            assert ddp[step][term] == pytest.approx(single[step][term], rel=1e-4, abs=1e-6), (step, term)
        # the norm of a sum of averaged gradients: float summation order shows earlier (~1e-4 seen)
        assert ddp[step]["grad_norm"] == pytest.approx(single[step]["grad_norm"], rel=1e-3), step
    # only rank 0 wrote: one line per step and a checkpoint every save_every steps
    assert {p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()} >= {f"step-{s}" for s in range(10, 61, 10)}

    killed = _train(TORCHRUN, tmp_path / "killed", env, wait=False, data=data)
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "killed" / "checkpoints" / "step-20").exists():
        time.sleep(0.05)
    for pid in [killed.pid, *descendants(killed.pid)]:  # torchrun starts its workers in sessions of their own
        os.kill(pid, signal.SIGKILL)
    killed.wait()
    assert 20 <= max(step_rows(tmp_path / "killed")) < 60, "the run must be killed mid-way"
    resumed = subprocess.run([*TORCHRUN, "-m", "wmkit", "train", "--resume", str(tmp_path / "killed"),
                              "--no-live"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, _errors(resumed.stderr)
    again = step_rows(tmp_path / "killed")
    assert sorted(again) == list(range(1, 61))
    assert {s: r["loss"] for s, r in again.items()} == {s: r["loss"] for s, r in ddp.items()}


def test_world_size_that_does_not_divide_the_batch_is_one_line(tmp_path, env):
    data = write_commitpack_jsonl(tmp_path / "rows.jsonl", rows(20))
    done = subprocess.run([*TORCHRUN, "-m", "wmkit", "train", "recipes/loops3_auxpred_vicreg.toml", "--data",
                           f"jsonl:{data}", "--out", str(tmp_path / "run"), *_sets(TINY),
                           "--set", "optim.batch_size=7"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    errors = {line for line in done.stderr.splitlines() if line.startswith("error:")}
    assert len(errors) == 1, done.stderr[-3000:]
    (line,) = errors
    assert "optim.batch_size = 7" in line and "world size 2" in line
    assert not (tmp_path / "run").exists()


def test_gather_is_the_identity_in_one_process():
    import torch

    from wmkit.distributed import gather_batch, mean_over_ranks

    x = torch.randn(4, 3, requires_grad=True)
    assert gather_batch(x) is x
    terms = {"loss": torch.tensor(2.0)}
    assert mean_over_ranks(terms) is terms
