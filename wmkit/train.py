"""The training loop, top to bottom.

``train(recipe, ...)`` resolves the run directory, prepares the data, seeds everything, builds the
world model from its plugins, then loops: sample a batch, compute the named loss terms, step
AdamW under a warm-up + cosine schedule, update the EMA target, log, probe the validation batch,
checkpoint. ``--resume`` restores model, optimizer, RNG streams and sampler so that the continued
run reproduces the uninterrupted one step for step.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wmkit import __version__, distributed
from wmkit.checkpoint import (load_trainer_state, load_weights, read_index, resolve_checkpoint, save_checkpoint,
                              update_index, write_json_atomic)
from wmkit.errors import RunError, WmkitError
from wmkit.evaluation import probe_validation
from wmkit.model import build_world_model
from wmkit.runtime import load_data, pick_device, resolve_source
from wmkit.seed import seed_everything

#: reference §5 warnings
MEMORISATION_DELTA_COS = 0.999
MEMORISATION_AFTER_STEP = 500
EXPLOSION_FACTOR = 50.0

#: the validation probe batch is drawn with this fixed seed: the same rows for every training seed
VAL_BATCH_SEED = 0


class TrainingDiverged(WmkitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunResult:
    run_dir: Path
    step: int
    stopped_early: bool
    last_eval: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    best: str | None = None


def learning_rate(step: int, *, lr: float, warmup: int, total: int, floor_ratio: float) -> float:
    """Linear warm-up from ``floor_ratio*lr`` over ``warmup`` steps, then cosine to ``floor_ratio*lr``
    at ``total`` (reference §4). ``step`` is 0-based; the schedule always spans the full recipe."""
    floor = floor_ratio * lr
    if warmup > 0 and step < warmup:
        return floor + (lr - floor) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))


def default_run_dir(recipe) -> Path:
    v = recipe.values
    return Path("runs") / v["data"]["domain"] / f"{v['meta']['name']}_{recipe.digest()}_seed{v['meta']['seed']}"


def recipe_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved recipes."""
    keys = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += recipe_differences(va, vb, f"{path}.")
        elif va != vb:
            keys.append(path)
    return keys


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _rng_tensors(sampler: torch.Generator) -> dict:
    states = {"torch": torch.get_rng_state(), "sampler": sampler.get_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda{i}"] = s
    return states


def _restore_rng(rng: dict, trainer: dict, sampler: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    sampler.set_state(rng["sampler"])
    if torch.cuda.is_available():
        cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = trainer["python_random"]
    random.setstate((version, tuple(internal), gauss))
    np_state = trainer["numpy_random"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))


def _python_numpy_rng() -> dict:
    version, internal, gauss = random.getstate()
    st = np.random.get_state()
    return {"python_random": [version, list(internal), gauss],
            "numpy_random": [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])]}


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines after ``last_step`` (a killed run may have logged past its checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is gone too
        if row.get("step", 0) <= last_step:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    tmp.replace(path)


def prepare_run_dir(recipe, out: Path | None, *, resume: bool, force: bool) -> tuple[Path, Path | None]:
    """Decide where the run goes; refuse to clobber. Returns ``(run_dir, checkpoint_to_resume)``."""
    run_dir = Path(out) if out is not None else default_run_dir(recipe)
    config = run_dir / "config.json"
    if resume:
        if not config.exists():
            raise RunError(f"--resume {run_dir}: no run there (missing config.json); start it without --resume")
        previous = json.loads(config.read_text())["recipe"]
        diff = recipe_differences(previous, recipe.values)
        if diff:
            raise RunError(f"--resume {run_dir}: the resolved recipe differs from the run's in "
                           f"{', '.join(diff)}; resume with the same recipe and overrides or start a new run")
        index = read_index(run_dir)
        if not index.get("latest"):
            return run_dir, None
        return run_dir, resolve_checkpoint(run_dir, "latest")
    if run_dir.exists() and any(run_dir.iterdir()):
        if not force:
            raise RunError(f"--out {run_dir}: already holds a run; pass --resume to continue it or --force "
                           f"to replace it")
    return run_dir, None


def train(recipe, *, out: Path | None = None, resume: bool = False, force: bool = False,
          early_stop: int | None = None, data_source: str | None = None, host=None,
          console=None, live: bool | None = None) -> RunResult:
    """Train ``recipe`` (a resolved :class:`wmkit.recipe.Recipe`) and return where it went."""
    from wmkit.plugins import get_host
    from wmkit.progress import TrainingView

    host = host or get_host()
    v = recipe.values
    total_steps = v["train"]["steps"]
    stop_at = min(early_stop, total_steps) if early_stop else total_steps

    # under torchrun: optim.batch_size is the global batch, split over the ranks (wmkit.distributed)
    world = distributed.from_environment()
    batch_size = v["optim"]["batch_size"]
    local_batch = distributed.local_batch_size(batch_size, world)

    # 1. where the run goes, and what it resumes from (refuses before touching anything)
    run_dir, resume_from = prepare_run_dir(recipe, out, resume=resume, force=force)
    if world.distributed:
        device = distributed.start(world, v["train"]["device"])
        resume_from = distributed.agree_on_checkpoint(resume_from)

    # 2. data (cached); any data error stops us before the run directory is written. Rank 0 prepares
    # first so that the cache is written once, the other ranks then read it.
    if not world.is_main:
        distributed.barrier()
    domain, data = load_data(recipe, source=data_source, host=host, progress=world.is_main)
    if world.distributed and world.is_main:
        distributed.barrier()
    train_idx = torch.from_numpy(np.asarray(data.train_indices(), dtype=np.int64))
    val_idx = np.asarray(data.val_indices(), dtype=np.int64)
    if len(train_idx) < batch_size:
        raise RunError(f"data: only {len(train_idx)} training rows after filtering but optim.batch_size is "
                       f"{batch_size}; lower it with --set optim.batch_size=N or use more data")
    if len(val_idx) < 2:
        raise RunError(f"data: only {len(val_idx)} validation rows; use more data or raise data.val_percent")
    if force and run_dir.exists() and not resume and world.is_main:
        shutil.rmtree(run_dir)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    # 3. seed everything, then construct (reference defect D3)
    seed_everything(v["meta"]["seed"])
    if v["train"]["threads"]:
        torch.set_num_threads(v["train"]["threads"])
    if not world.distributed:
        device = pick_device(v["train"]["device"])
    model = build_world_model(v, vocab_size=domain.vocab.size, pad_id=domain.vocab.pad_id,
                              action_dim=domain.action_dim, resolve=host.resolve).to(device)
    forward = model
    if world.distributed:
        distributed.global_batch_norm(model)
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=v["optim"]["lr"],
                                  weight_decay=v["optim"]["weight_decay"])
    sampler = torch.Generator().manual_seed(v["meta"]["seed"])
    use_bf16 = device.type == "cuda" and v["train"]["precision"] in ("auto", "bf16")

    # the fixed validation probe batch: the same rows whatever the training seed (defect D4)
    probe_rows = np.sort(np.random.default_rng(VAL_BATCH_SEED).choice(
        val_idx, size=min(v["eval"]["batch_size"], len(val_idx)), replace=False))
    probe = [torch.from_numpy(np.asarray(a[probe_rows])).to(device) for a in (data.before, data.after, data.actions)]
    probe[0], probe[1] = probe[0].long(), probe[1].long()

    start_step, best_metric, best_loss, warned = 0, -math.inf, math.inf, set()
    if resume_from is not None:
        model.load_state_dict(load_weights(resume_from))
        opt_state, rng, trainer = load_trainer_state(resume_from)
        optimizer.load_state_dict(opt_state)
        _restore_rng(rng, trainer, sampler)
        start_step = trainer["step"]
        best_metric = trainer["best_metric"] if trainer["best_metric"] is not None else -math.inf
        best_loss = trainer["best_loss"]
        warned = set(trainer.get("warned", []))
        if world.is_main:  # another rank replacing the file would cut rank 0's log
            _truncate_metrics(run_dir / "metrics.jsonl", start_step)

    components = {kind: {"name": name, "plugin": host.get(kind, name).plugin, "version": host.get(kind, name).version}
                  for kind, name in (("domain", v["data"]["domain"]), ("encoder", v["model"]["encoder"]["name"]),
                                     ("predictor", v["model"]["predictor"]["name"]),
                                     ("regularizer", v["regularizer"]["name"]),
                                     ("aux_loss", v["loss"]["aux"]["type"]))}
    domain_facts = {"domain": domain.name, "vocab_version": domain.vocab.version, "vocab_size": domain.vocab.size,
                    "pad_id": domain.vocab.pad_id, "action_dim": domain.action_dim}
    if resume_from is None and world.is_main:
        write_json_atomic(run_dir / "config.json", {
            "recipe": v, "recipe_digest": recipe.digest(), "origin": recipe.origin, "overrides": recipe.overrides,
            "environment": recipe.env, "wmkit_version": __version__, "git_revision": git_revision(),
            "components": components, **domain_facts, "action_names": domain.action_names,
            "label_names": domain.label_names,
            "data": {"source": resolve_source(recipe, domain, data_source), **{k: data.meta.get(k) for k in
                     ("source_fingerprint", "cache_key", "counts", "truncation")}},
            "parameters": dict(model.parameter_breakdown()),
            "torch_version": torch.__version__, "python": sys.version.split()[0],
        })

    # only rank 0 writes the log and the checkpoints
    metrics_file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if world.is_main else None
    warnings: list[dict] = []

    def log(row: dict) -> None:
        if metrics_file is not None:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()

    def warn(step: int, kind: str, message: str) -> None:
        row = {"event": "warning", "step": step, "kind": kind, "message": message}
        warnings.append(row)
        log(row)
        view.warn(f"step {step}: {kind}: {message}")

    def checkpoint(step: int, last_eval: dict, is_best: bool) -> None:
        if not world.is_main:
            return
        meta = dict(domain_facts, recipe=v, metrics=last_eval, recipe_digest=recipe.digest())
        trainer = {"step": step, "best_metric": None if best_metric == -math.inf else best_metric,
                   "best_loss": best_loss, "warned": sorted(warned), **_python_numpy_rng()}
        save_checkpoint(run_dir, step=step, model=model, optimizer=optimizer, rng=_rng_tensors(sampler),
                        trainer=trainer, meta=meta)
        update_index(run_dir, step=step, is_best=is_best, best_metric=last_eval.get("delta_cos"),
                     keep=v["train"]["keep_checkpoints"])

    view = TrainingView(console=console, total=stop_at, start=start_step, live=live if world.is_main else False,
                        title=f"{v['meta']['name']} on {domain.name} -> {run_dir}", quiet=not world.is_main)
    last_eval: dict = {}
    step = start_step
    with view:
        for step in range(start_step + 1, stop_at + 1):
            # -- one optimisation step ------------------------------------------------------------
            lr = learning_rate(step - 1, lr=v["optim"]["lr"], warmup=v["optim"]["warmup_steps"],
                               total=total_steps, floor_ratio=v["optim"]["min_lr_ratio"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = train_idx[torch.randperm(len(train_idx), generator=sampler)[:batch_size]].numpy()
            rows.sort()
            rows = rows[world.rank * local_batch:(world.rank + 1) * local_batch]  # this rank's slice
            before = torch.from_numpy(np.asarray(data.before[rows])).long().to(device)
            after = torch.from_numpy(np.asarray(data.after[rows])).long().to(device)
            actions = torch.from_numpy(np.asarray(data.actions[rows])).to(device)
            model.train()
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                terms = forward(before, after, actions)
            loss = terms["loss"]
            logged = distributed.mean_over_ranks(terms)  # the global batch's terms (every rank the same)
            if not torch.isfinite(logged["loss"]):
                warn(step, "nan", f"loss is {logged['loss'].item()}; stopping, the last good checkpoint is kept")
                raise TrainingDiverged(f"training diverged at step {step} (loss {logged['loss'].item()}); the last good "
                                       f"checkpoint in {run_dir} is kept; lower optim.lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = v["optim"]["grad_clip"]
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf"))
            optimizer.step()
            model.update_target()

            row = {"step": step, "loss": logged["loss"].item(), **{k: float(t) for k, t in logged.items() if k != "loss"},
                   "lr": lr, "grad_norm": float(grad_norm)}
            log(row)
            view.update(step, row)

            # -- the reference's warnings (§5) -----------------------------------------------------
            train_delta_cos = 1.0 - row["dir"] if "dir" in row else None
            if (train_delta_cos is not None and step > MEMORISATION_AFTER_STEP
                    and train_delta_cos > MEMORISATION_DELTA_COS and "memorisation" not in warned):
                warned.add("memorisation")
                warn(step, "memorisation", f"training-batch delta cos {train_delta_cos:.4f} > "
                     f"{MEMORISATION_DELTA_COS} after step {MEMORISATION_AFTER_STEP}: possible memorisation")
            if step > v["optim"]["warmup_steps"]:
                if row["loss"] > EXPLOSION_FACTOR * best_loss and "explosion" not in warned:
                    warned.add("explosion")
                    warn(step, "loss_explosion", f"loss {row['loss']:.4g} > {EXPLOSION_FACTOR:g}x the best "
                         f"{best_loss:.4g} after warm-up")
                best_loss = min(best_loss, row["loss"])

            # -- validation probe, checkpoints ----------------------------------------------------------
            is_best = False
            if (step % v["train"]["eval_every"] == 0 or step == stop_at) and world.is_main:
                model.eval()
                last_eval = probe_validation(model, *probe)
                log({"event": "eval", "step": step, **last_eval})
                view.show_eval(step, last_eval)
                if last_eval["delta_cos"] > best_metric:
                    best_metric, is_best = last_eval["delta_cos"], True
            if step % v["train"]["save_every"] == 0 or step == stop_at or is_best:
                checkpoint(step, last_eval, is_best)
    if metrics_file is not None:
        metrics_file.close()
    distributed.barrier()  # every rank returns after rank 0 has written its last checkpoint
    if world.distributed:
        distributed.stop()
    index = read_index(run_dir)
    return RunResult(run_dir=run_dir, step=step, stopped_early=stop_at < total_steps, last_eval=last_eval,
                     warnings=warnings, best=index.get("best"))
