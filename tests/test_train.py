"""Training: exact resumption (also after SIGKILL), early stop, seeds, run-directory safety."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "wmkit_toy"
TINY = ["model.dim=32", "model.heads=2", "optim.batch_size=16", "eval.probe_size=16", "data.max_len=16",
        "train.eval_every=3", "train.save_every=4", "train.threads=1"]


@pytest.fixture
def toy_host(wmkit_host, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    import wmkit_toy.plugin

    record = wmkit_host.register_plugin(wmkit_toy.plugin, "toy", distribution="wmkit-toy", version="0.1.0")
    assert record.status == "ok", record.error
    yield wmkit_host
    wmkit_host.pm.unregister(name="toy")


def toy_recipe(host, *extra):
    from wmkit.recipe import load_recipe

    return load_recipe(None, domain="toy", overrides=[*TINY, *extra], host=host, environ={})


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "event" not in r}


def test_early_stop_then_resume_matches_straight_run(toy_host, tmp_path):
    from wmkit.train import train

    recipe = toy_recipe(toy_host, "train.steps=12")
    straight = train(recipe, out=tmp_path / "straight", host=toy_host, live=False)
    assert straight.step == 12 and not straight.stopped_early
    first = train(recipe, out=tmp_path / "split", host=toy_host, live=False, early_stop=6)
    assert first.stopped_early and first.step == 6
    assert json.loads((tmp_path / "split" / "checkpoints" / "step-6" / "checkpoint.json").read_text())["step"] == 6
    config = json.loads((tmp_path / "split" / "config.json").read_text())
    assert config["recipe"]["train"]["steps"] == 12  # the full schedule is recorded
    train(recipe, out=tmp_path / "split", resume=True, host=toy_host, live=False)
    a, b = losses(tmp_path / "straight"), losses(tmp_path / "split")
    assert sorted(a) == list(range(1, 13)) and a == b


def test_same_seed_same_start_different_seed_different(toy_host, tmp_path):
    import torch
    from safetensors.torch import load_file

    from wmkit.train import train

    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        recipe = toy_recipe(toy_host, "train.steps=1", "train.save_every=1", f"meta.seed={seed}",
                            "optim.lr=0.0")  # lr 0: the step-1 weights are the initial weights
        train(recipe, out=tmp_path / name, host=toy_host, live=False)
        runs[name] = (load_file(str(tmp_path / name / "checkpoints" / "step-1" / "model.safetensors")),
                      losses(tmp_path / name)[1])
    wa, wb, wc = runs["a"][0], runs["b"][0], runs["c"][0]
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and runs["a"][1] == runs["b"][1]
    assert any(not torch.equal(wa[k], wc[k]) for k in wa) and runs["a"][1] != runs["c"][1]


def test_existing_run_is_refused_and_left_untouched(toy_host, tmp_path):
    from wmkit.errors import RunError
    from wmkit.train import train

    recipe = toy_recipe(toy_host, "train.steps=2")
    train(recipe, out=tmp_path / "run", host=toy_host, live=False)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    with pytest.raises(RunError, match="already holds a run; pass --resume"):
        train(recipe, out=tmp_path / "run", host=toy_host, live=False)
    other = toy_recipe(toy_host, "train.steps=2", "optim.lr=0.001", "model.encoder.loops=2", "loss.aux.loops=[1]")
    with pytest.raises(RunError, match=r"differs .* in loss\.aux\.loops, model\.encoder\.loops, optim\.lr"):
        train(other, out=tmp_path / "run", resume=True, host=toy_host, live=False)
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    train(other, out=tmp_path / "run", force=True, host=toy_host, live=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["optim"]["lr"] == 0.001


def test_metrics_have_every_named_term_and_eval_rows(toy_host, tmp_path):
    from wmkit.train import train

    train(toy_recipe(toy_host, "train.steps=3"), out=tmp_path / "r", host=toy_host, live=False)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "event" not in r]
    for term in ("loss", "pred", "dir", "mag", "cov", "reg", "aux", "lr", "grad_norm"):
        assert term in steps[0], term
    evals = [r for r in rows if r.get("event") == "eval"]
    assert evals and evals[0]["gallery_size"] == 16
    assert evals[0]["random_knn_at_1"] == pytest.approx(1 / 16)
    index = json.loads((tmp_path / "r" / "checkpoints" / "index.json").read_text())
    assert index["latest"] == "step-3" and index["best"] is not None


SIGKILL_SCRIPT = """
import sys
sys.path.insert(0, {fixtures!r})
import wmkit_toy.plugin
from wmkit.plugins import get_host
from wmkit.recipe import load_recipe
from wmkit.train import train
host = get_host()
host.register_plugin(wmkit_toy.plugin, "toy")
recipe = load_recipe(None, domain="toy", overrides={overrides!r}, host=host, environ={{}})
train(recipe, out={out!r}, resume={resume}, host=host, live=False)
"""


def _script(out, resume, overrides):
    return SIGKILL_SCRIPT.format(fixtures=str(FIXTURES), overrides=overrides, out=str(out), resume=resume)


def test_resume_after_sigkill_reproduces_losses(tmp_path):
    overrides = [*TINY, "train.steps=60", "train.save_every=5", "train.eval_every=20"]
    env = dict(os.environ, WMKIT_CACHE_DIR=str(tmp_path / "cache"))
    straight = subprocess.run([sys.executable, "-c", _script(tmp_path / "straight", False, overrides)],
                              env=env, capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    killed = subprocess.Popen([sys.executable, "-c", _script(tmp_path / "killed", False, overrides)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "killed" / "checkpoints" / "step-10").exists():
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done = losses(tmp_path / "killed")
    assert 10 <= max(done) < 60, "the run must be killed mid-way"
    resumed = subprocess.run([sys.executable, "-c", _script(tmp_path / "killed", True, overrides)], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert losses(tmp_path / "killed") == losses(tmp_path / "straight")


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(toy_host, tmp_path, monkeypatch):
    import torch

    import wmkit.train as train_module
    from wmkit.train import TrainingDiverged, train

    real_build = train_module.build_initial_world_model

    def build_with_nan_at_step_6(*args, **kwargs):
        model = real_build(*args, **kwargs)
        forward, calls = model.forward, {"n": 0}

        def poisoned(*a, **k):
            calls["n"] += 1
            out = forward(*a, **k)
            if calls["n"] == 6:
                out["loss"] = out["loss"] * torch.tensor(float("nan"))
            return out

        model.forward = poisoned
        return model

    monkeypatch.setattr(train_module, "build_initial_world_model", build_with_nan_at_step_6)
    with pytest.raises(TrainingDiverged, match="diverged at step 6"):
        train(toy_recipe(toy_host, "train.steps=12"), out=tmp_path / "r", host=toy_host, live=False)
    index = json.loads((tmp_path / "r" / "checkpoints" / "index.json").read_text())
    assert index["latest"] == "step-4"  # saved at 4 (save_every), nothing after the NaN
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["event"] == "warning" and rows[-1]["kind"] == "nan"


def test_bf16_on_cpu_trains_the_paper_recipe_with_finite_losses(toy_host, tmp_path):
    """``train.precision = "bf16"`` autocasts on the CPU too: 20 steps of the paper recipe (its
    width, loops, aux losses, VICReg and dropout; short toy sequences) stay finite, and the first
    loss is fp32's up to bf16 rounding (CPUs without bf16 instructions emulate it: kept small)."""
    import math

    from wmkit.recipe import load_recipe
    from wmkit.train import train

    runs = {}
    for precision, steps in (("bf16", 20), ("fp32", 1)):
        recipe = load_recipe("loops3_auxpred_vicreg", domain="toy", host=toy_host, environ={}, overrides=[
            "data.source=toy:generated", "optim.batch_size=8", "eval.probe_size=8", "data.max_len=8",
            f"train.steps={steps}", f"train.eval_every={steps}", f"train.save_every={steps}", "train.threads=1",
            f"train.precision={precision}"])
        train(recipe, out=tmp_path / precision, host=toy_host, live=False)
        runs[precision] = losses(tmp_path / precision)
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert config["recipe"]["train"]["precision"] == "bf16"
    assert sorted(runs["bf16"]) == list(range(1, 21))
    assert all(math.isfinite(x) for x in runs["bf16"].values())
    assert runs["bf16"][1] != runs["fp32"][1]  # autocast really ran: bf16 rounding changes the loss
    assert abs(runs["bf16"][1] - runs["fp32"][1]) < 0.05 * abs(runs["fp32"][1])  # the same model, rounded


def test_target_cache_is_off_by_default_recorded_and_reuses_readouts(toy_host, tmp_path):
    """``train.target_refresh_every`` defaults to 0 (the target encodes every step) and is recorded in
    config.json; on, a row's cached target readouts are the target encoder's output, reused until K
    steps old, and a run with it trains to finite losses close to the run without it."""
    import math

    import numpy as np
    import torch

    from wmkit.target_cache import TargetCache
    from wmkit.train import train

    train(toy_recipe(toy_host, "train.steps=6"), out=tmp_path / "off", host=toy_host, live=False)
    assert json.loads((tmp_path / "off" / "config.json").read_text())["recipe"]["train"]["target_refresh_every"] == 0
    train(toy_recipe(toy_host, "train.steps=6", "train.target_refresh_every=4"), out=tmp_path / "on",
          host=toy_host, live=False)
    assert json.loads((tmp_path / "on" / "config.json").read_text())["recipe"]["train"]["target_refresh_every"] == 4
    off, on = losses(tmp_path / "off"), losses(tmp_path / "on")
    assert all(math.isfinite(x) for x in on.values())
    assert on[1] == off[1]  # step 1: every row is fresh, so the same readouts as an uncached step
    assert all(abs(on[s] - off[s]) < 0.05 * abs(off[s]) for s in off)

    class Target(torch.nn.Module):  # counts what it encodes; z = the token sum, a checkable readout
        def __init__(self):
            super().__init__()
            self.seen = 0

        def encode(self, tokens, target=False):
            assert target
            self.seen += len(tokens)
            return type("Out", (), {"z": tokens.float().sum(1, keepdim=True).repeat(1, 3)})()

    model, cache = Target(), TargetCache(10, 3, with_before=True)
    before = torch.arange(40).view(10, 4)
    after = before + 100
    rows = np.array([1, 4, 7])
    tb, ta = cache.lookup(model, rows, before[rows], after[rows], step=1)
    assert torch.equal(ta[:, 0], after[rows].float().sum(1)) and torch.equal(tb[:, 0], before[rows].float().sum(1))
    assert model.seen == 6  # three rows, both sides
    cache.lookup(model, np.array([4, 7, 9]), before[[4, 7, 9]], after[[4, 7, 9]], step=3)
    assert model.seen == 8  # only row 9 was new
    cache.lookup(model, np.array([9]), before[[9]], after[[9]], step=5)
    assert model.seen == 8  # row 9 is 2 steps old: reused
    cache.lookup(model, rows, before[rows], after[rows], step=4)
    assert model.seen == 14  # rows 1, 4 and 7, computed at step 1, are 3 steps old: encoded again
