"""The training loop, top to bottom.

``train(recipe, ...)`` resolves the run directory, prepares the data, seeds everything, builds the
world model from its plugins, then loops: sample a batch, compute the named loss terms, step
AdamW under a warm-up + cosine schedule, update the EMA target, log, probe the validation batch,
checkpoint. ``--resume`` restores model, optimizer, RNG streams and sampler so that the continued
run reproduces the uninterrupted one step for step.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wmkit import __version__, distributed, kinds
from wmkit.checkpoint import (ANOTHER_CHECKPOINT, fit_weights, load_trainer_state, load_weights, read_index, resolve_checkpoint,
                              save_checkpoint, update_index, write_json_atomic)
from wmkit.errors import CheckpointError, RecipeError, RunError, WmkitError
from wmkit.evaluation import criterion_value, probe_validation
from wmkit.loggers import LoggerSet, open_loggers
from wmkit.model import build_initial_world_model
from wmkit.target_cache import TargetCache
from wmkit.warm_start import describe as describe_warm_start, warm_start_action_encoder
from wmkit.rundir import RunLock, check_target, is_empty_dir, is_run, recover, stage, write_marker
from wmkit.runtime import check_action_inputs, load_data, pick_device, resolve_source

#: reference §5 (docs/reference.md#s5) warnings
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

    def metrics(self, kind: str = "train"):
        """The run's ``metrics.jsonl`` rows of ``kind`` (train, eval, warning, all): a pandas DataFrame
        when pandas is installed, else a list of dicts."""
        from wmkit.api import metrics_frame

        return metrics_frame(self.run_dir, kind)


def learning_rate(step: int, *, lr: float, warmup: int, total: int, floor_ratio: float) -> float:
    """Linear warm-up from ``floor_ratio*lr`` over ``warmup`` steps, then cosine to ``floor_ratio*lr``
    at ``total`` (reference §4, docs/reference.md#s4). ``step`` is 0-based; the schedule always
    spans the full recipe."""
    floor = floor_ratio * lr
    if warmup > 0 and step < warmup:
        return floor + (lr - floor) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))


def default_run_dir(recipe) -> Path:
    o = recipe.options
    return Path("runs") / o.data.domain / f"{o.meta.name}_{recipe.digest()}_seed{o.meta.seed}"


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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    tmp.replace(path)


def _run_config(run_dir: Path) -> dict:
    """The run's ``config.json``, or one :class:`RunError` line when it is missing or damaged."""
    config = Path(run_dir) / "config.json"
    if not config.exists():
        raise RunError(f"--resume {run_dir}: no run there (missing config.json); start it without --resume")
    try:
        body = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"--resume {run_dir}: config.json is truncated or unreadable ({type(exc).__name__}); "
                       f"the run cannot be resumed: start a new one") from None
    if not isinstance(body, dict) or not isinstance(body.get("recipe"), dict):
        raise RunError(f"--resume {run_dir}: config.json holds no recorded recipe; the run cannot be resumed: "
                       f"start a new one")
    return body


def _checkpoint_to_resume(run_dir: Path, name: str | None) -> Path | None:
    """``checkpoints/<name>`` (``--checkpoint step-N``), else the latest; None when there is none."""
    index = read_index(run_dir)
    if name is None:
        return resolve_checkpoint(run_dir, "latest") if index.get("latest") else None
    chosen = Path(run_dir) / "checkpoints" / name
    if not name.startswith("step-") or not chosen.is_dir():
        have = ", ".join(f"step-{s}" for s in index.get("steps", [])) or "none"
        raise RunError(f"--checkpoint {name}: no such checkpoint in {run_dir} (have: {have})")
    return chosen


def _forget_later_checkpoints(run_dir: Path, step: int) -> None:
    """After ``--checkpoint step-N``: the index forgets later checkpoints (rewritten when reached)."""
    index = read_index(run_dir)
    steps = [s for s in index.get("steps", []) if s <= step]
    best = index.get("best")
    if best and int(best.split("-")[1]) > step:
        index.update(best=None, best_metric=None)
    index.update(latest=f"step-{step}", steps=steps)
    write_json_atomic(Path(run_dir) / "checkpoints" / "index.json", index)


def prepare_run_dir(recipe, out: Path | None, *, resume: bool, force: bool,
                    checkpoint: str | None = None) -> tuple[Path, Path | None]:
    """Decide where the run goes; refuse to clobber. Returns ``(run_dir, checkpoint_to_resume)``.

    Call it holding the run's :class:`wmkit.rundir.RunLock`."""
    run_dir = Path(out) if out is not None else default_run_dir(recipe)
    if resume and force:
        raise RunError(f"--resume {run_dir} --force: --resume continues the run and --force replaces it; "
                       f"pass only one")
    if checkpoint is not None and not resume:
        raise RunError(f"--checkpoint {checkpoint}: only meaningful with --resume RUN_DIR")
    if resume:
        from wmkit.recipe import experiment_values

        previous = _run_config(run_dir)["recipe"]
        diff = recipe_differences(experiment_values(previous), experiment_values(recipe.values))  # loggers may change
        if diff:
            from wmkit.recipe import ENV_VARS

            sources = {ENV_VARS[var][0]: var for var in getattr(recipe, "env", {}) if var in ENV_VARS}
            named = ", ".join(f"{k} (from {sources[k]})" if k in sources else k for k in diff)
            raise RunError(f"--resume {run_dir}: the resolved recipe differs from the run's in "
                           f"{named}; resume with the same recipe and overrides or start a new run")
        return run_dir, _checkpoint_to_resume(run_dir, checkpoint)
    check_target(run_dir, force=force)
    return run_dir, None


def _training_rows_error(data, batch_size: int, n_train: int, n_val: int) -> str:
    counts = data.meta.get("counts", {})
    if n_train == 0 and n_val > 0:
        return (f"data: all {n_val} kept rows are validation rows (split rule: {counts.get('split_rule', '?')}); "
                f"the split column must mark some rows 'train', or drop it to split by commit hash")
    return (f"data: only {n_train} training rows after filtering but optim.batch_size is "
            f"{batch_size}; lower it with --set optim.batch_size=N or use more data")


def _all_finite(model) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def train(recipe, *, out: Path | None = None, resume: bool = False, force: bool = False,
          early_stop: int | None = None, data_source: str | None = None, host=None,
          console=None, live: bool | None = None, checkpoint: str | None = None) -> RunResult:
    """Train ``recipe`` (a resolved :class:`wmkit.recipe.Recipe`) and return where it went.

    The run directory is locked for the whole call (a second writer is refused); ``force``
    replaces an existing run only once the new one has validated and prepared its data."""
    run_dir = Path(out) if out is not None else default_run_dir(recipe)
    if resume and force:
        raise RunError(f"--resume {run_dir} --force: --resume continues the run and --force replaces it; "
                       f"pass only one")
    # under torchrun every rank calls train(): the lock (and the cleanup it guards) belongs to rank 0
    primary = os.environ.get("RANK", "0") == "0"
    with RunLock(run_dir) if primary else contextlib.nullcontext():
        if primary:
            recover(run_dir)
        try:
            return _train(recipe, run_dir, resume=resume, force=force, early_stop=early_stop,
                          data_source=data_source, host=host, console=console, live=live, checkpoint=checkpoint)
        except OSError as exc:  # a read-only or full --out: one line, what was written stays valid
            where = exc.filename or run_dir
            raise RunError(f"--out {run_dir}: cannot write {where} ({exc.strerror or type(exc).__name__}); "
                           f"free space or choose a writable --out, then --resume") from None


def _train(recipe, run_dir: Path, *, resume: bool, force: bool, early_stop: int | None, data_source: str | None,
           host, console, live: bool | None, checkpoint: str | None) -> RunResult:
    from wmkit.plugins import get_host
    from wmkit.progress import TrainingView

    host = host or get_host()
    v, o = recipe.values, recipe.options
    total_steps = o.train.steps
    stop_at = min(early_stop, total_steps) if early_stop else total_steps

    # under torchrun: optim.batch_size is the global batch, split over the ranks (wmkit.distributed)
    world = distributed.from_environment()
    batch_size = o.optim.batch_size
    local_batch = distributed.local_batch_size(batch_size, world)

    # 1. where the run goes, and what it resumes from (refuses before touching anything)
    run_dir, resume_from = prepare_run_dir(recipe, run_dir, resume=resume, force=force, checkpoint=checkpoint)
    check_action_inputs(recipe, host.resolve("domain", o.data.domain), host)
    if world.distributed:
        device = distributed.start(world, o.train.device)
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
        raise RunError(_training_rows_error(data, batch_size, len(train_idx), len(val_idx)))
    if len(val_idx) < 2:
        raise RunError(f"data: only {len(val_idx)} validation rows; use more data or raise data.val_percent")
    probe_size = o.eval.probe_size or len(val_idx)
    if len(val_idx) < probe_size:
        raise RecipeError(f"eval.probe_size: {probe_size} validation pairs asked for the probe gallery that "
                          f"train.select = {o.train.select!r} is measured on, but the data has only "
                          f"{len(val_idx)}; lower eval.probe_size (0 = all {len(val_idx)}) or use more data")
    if not world.distributed:
        device = pick_device(o.train.device)  # an unusable device is refused before anything is replaced

    # 3. seed everything, then construct (reference defect D3, docs/reference.md#d3)
    if o.train.threads:
        torch.set_num_threads(o.train.threads)
    model = build_initial_world_model(v, vocab_size=domain.vocab.size, pad_id=domain.vocab.pad_id,
                                      action_dim=domain.action_dim, resolve=host.constructor).to(device)
    forward = model
    if world.distributed:
        distributed.global_batch_norm(model)
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=o.optim.lr,
                                  weight_decay=o.optim.weight_decay)
    sampler = torch.Generator().manual_seed(o.meta.seed)
    target_cache = None  # off by default: the paper encodes target(after) every step
    if o.train.target_refresh_every:
        target_cache = TargetCache(len(data.before), o.train.target_refresh_every,
                                   with_before=model.reads_target_before)
    # bf16 autocast wherever asked (on CPUs with bf16 units it is the faster choice); auto = CUDA only
    use_bf16 = o.train.precision == "bf16" or (o.train.precision == "auto" and device.type == "cuda")

    # the fixed validation probe gallery: the same rows whatever the training seed
    # (defect D4, docs/reference.md#d4)
    probe_rows = np.sort(np.random.default_rng(VAL_BATCH_SEED).choice(val_idx, size=probe_size, replace=False))
    probe = [torch.from_numpy(np.asarray(a[probe_rows])).to(device) for a in (data.before, data.after, data.actions)]
    probe[0], probe[1] = probe[0].long(), probe[1].long()

    start_step, best_metric, best_loss, warned, stale = 0, -math.inf, math.inf, set(), 0
    select, patience = o.train.select, o.train.patience
    if resume_from is not None:
        fit_weights(model, load_weights(resume_from), resume_from)
        opt_state, rng, trainer = load_trainer_state(resume_from)
        try:
            optimizer.load_state_dict(opt_state)
            _restore_rng(rng, trainer, sampler)
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
            raise CheckpointError(f"{resume_from}: optimizer or RNG state does not fit this run "
                                  f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                                  f"{ANOTHER_CHECKPOINT}") from None
        start_step = trainer["step"]
        best_metric = trainer["best_metric"] if trainer["best_metric"] is not None else -math.inf
        best_loss = trainer["best_loss"] if trainer["best_loss"] is not None else math.inf
        warned = set(trainer.get("warned", []))
        stale = int(trainer.get("probes_without_best", 0))
        if world.is_main:  # another rank replacing the file would cut rank 0's log
            _truncate_metrics(run_dir / "metrics.jsonl", start_step)
            if checkpoint is not None:
                _forget_later_checkpoints(run_dir, start_step)
    elif resume and world.is_main:  # killed before its first checkpoint: start over, dropping what it logged
        _truncate_metrics(run_dir / "metrics.jsonl", 0)
    warm_start = None
    if resume_from is None and model.action_encoder.warm_start_pairs:
        # before the config is written: a warm start that cannot work is refused with nothing written
        if world.is_main:
            print(f"warm start: fitting the linear edit model on {min(model.action_encoder.warm_start_pairs, len(train_idx))} "
                  f"training pairs (model.action.init = ridge)", file=sys.stderr, flush=True)
        warm_start = warm_start_action_encoder(model, data, train_idx.numpy(), seed=o.meta.seed, device=device)
        if world.is_main:
            print(describe_warm_start(warm_start), file=sys.stderr, flush=True)

    components = {}
    for kind in kinds.KINDS:
        chosen = [host.get(kind.name, name) for name in kind.names(v)]
        record = [{"name": c.name, "plugin": c.plugin, "version": c.version} for c in chosen]
        components[kind.name] = record if kind.many else record[0]
    domain_facts = {"domain": domain.name, "vocab_version": domain.vocab.version, "vocab_size": domain.vocab.size,
                    "pad_id": domain.vocab.pad_id, "action_dim": domain.action_dim}
    if world.is_main:  # only rank 0 writes the run directory, its log and its checkpoints
        staged = None
        if not resume and run_dir.exists() and not is_empty_dir(run_dir):
            staged = stage(run_dir)  # --force: the new run is written beside the old one, then swapped in
            write_dir = staged.path
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not is_run(run_dir):
                write_marker(run_dir)
            write_dir = run_dir
        if resume_from is None:
            write_json_atomic(write_dir / "config.json", {
                "recipe": v, "recipe_digest": recipe.digest(), "origin": recipe.origin, "overrides": recipe.overrides,
                "environment": recipe.env, "wmkit_version": __version__, "git_revision": git_revision(),
                "components": components, **domain_facts, "action_names": domain.action_names,
                "label_names": domain.label_names,
                "data": {"source": resolve_source(recipe, domain, data_source), **{k: data.meta.get(k) for k in
                         ("source_fingerprint", "cache_key", "counts", "truncation")}},
                "parameters": dict(model.parameter_breakdown()), "warm_start": warm_start,
                "torch_version": torch.__version__, "python": sys.version.split()[0],
            })
        if staged is not None:
            staged.commit()
    distributed.barrier()  # the other ranks go on once the run directory exists

    warnings: list[dict] = []
    loggers = LoggerSet()  # rank 0 opens the recipe's loggers (metrics.jsonl first) once the view is up

    def warn(step: int, kind: str, message: str) -> None:
        warnings.append({"event": "warning", "step": step, "kind": kind, "message": message})
        loggers.warning(step, kind, message)
        view.warn(f"step {step}: {kind}: {message}")

    def diverged(step: int, what: str) -> TrainingDiverged:
        kept = read_index(run_dir).get("latest")
        said = (f"checkpoint {kept} (finite weights, finite loss) is kept" if kept
                else "no checkpoint was written before it")
        warn(step, "nan", f"{what}; stopping; {said}")
        return TrainingDiverged(f"training diverged at step {step} ({what}); {said} in {run_dir}; "
                                f"lower optim.lr or check the data")

    def save(step: int, last_eval: dict, is_best: bool) -> None:
        if not _all_finite(model):  # the divergence guard: never keep a checkpoint holding NaN or inf
            raise diverged(step, "weights became non-finite")
        if not world.is_main:
            return
        meta = dict(domain_facts, recipe=v, metrics=last_eval, recipe_digest=recipe.digest())
        trainer = {"step": step, "best_metric": None if best_metric == -math.inf else best_metric,
                   "best_loss": best_loss if math.isfinite(best_loss) else None,  # inf (still warming up) -> null
                   "warned": sorted(warned), "probes_without_best": stale, **_python_numpy_rng()}
        save_checkpoint(run_dir, step=step, model=model, optimizer=optimizer, rng=_rng_tensors(sampler),
                        trainer=trainer, meta=meta)
        update_index(run_dir, step=step, is_best=is_best,
                     best_metric=criterion_value(last_eval, select) if is_best else None,
                     criterion=select, keep=o.train.keep_checkpoints)

    view = TrainingView(console=console, total=stop_at, start=start_step, live=live if world.is_main else False,
                        title=f"{o.meta.name} on {domain.name} -> {run_dir}", quiet=not world.is_main)
    last_eval: dict = {}
    step = start_step
    stopped_by_patience = False
    with view, contextlib.ExitStack() as closing:
        if world.is_main:  # only rank 0 logs
            loggers = closing.enter_context(open_loggers(
                v, host, run_dir=run_dir, start_step=start_step,
                warn=lambda message: warn(step, "logger", message)))
            from wmkit.recipe import experiment_values

            loggers.start(experiment_values(v))  # hyper-parameters: what shapes the run
        if warm_start is not None and world.is_main:
            # a warm-started model is already a fitted edit model: probe and keep it as step-0, so that
            # selection can answer "training only made it worse" instead of picking the least bad step
            model.eval()
            last_eval = probe_validation(model, *probe, chunk=o.eval.batch_size)
            loggers.metrics(0, "val", last_eval)
            view.show_eval(0, last_eval)
            best_metric = criterion_value(last_eval, select)
            save(0, last_eval, True)
        for step in range(start_step + 1, stop_at + 1):
            # -- one optimisation step ------------------------------------------------------------
            lr = learning_rate(step - 1, lr=o.optim.lr, warmup=o.optim.warmup_steps,
                               total=total_steps, floor_ratio=o.optim.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = train_idx[torch.randperm(len(train_idx), generator=sampler)[:batch_size]].numpy()
            rows.sort()
            rows = rows[world.rank * local_batch:(world.rank + 1) * local_batch]  # this rank's slice
            before = torch.from_numpy(np.asarray(data.before[rows])).long().to(device)
            after = torch.from_numpy(np.asarray(data.after[rows])).long().to(device)
            actions = torch.from_numpy(np.asarray(data.actions[rows])).to(device)
            model.train()
            targets = None if target_cache is None else target_cache.lookup(model, rows, before, after, step)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                terms = forward(before, after, actions, targets=targets)
            loss = terms["loss"]
            logged = distributed.mean_over_ranks(terms)  # the global batch's terms (every rank the same)
            if not torch.isfinite(logged["loss"]):
                raise diverged(step, f"loss is {logged['loss'].item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = o.optim.grad_clip
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf"))
            optimizer.step()
            model.update_target()

            row = {"step": step, "loss": logged["loss"].item(), **{k: float(t) for k, t in logged.items() if k != "loss"},
                   "lr": lr, "grad_norm": float(grad_norm)}
            loggers.metrics(step, "train", row)
            view.update(step, row)

            # -- the reference's warnings (§5, docs/reference.md#s5) -----------------------------------------
            train_delta_cos = 1.0 - row["dir"] if "dir" in row else None
            if (train_delta_cos is not None and step > MEMORISATION_AFTER_STEP
                    and train_delta_cos > MEMORISATION_DELTA_COS and "memorisation" not in warned):
                warned.add("memorisation")
                warn(step, "memorisation", f"training-batch delta cos {train_delta_cos:.4f} > "
                     f"{MEMORISATION_DELTA_COS} after step {MEMORISATION_AFTER_STEP}: possible memorisation")
            if step > o.optim.warmup_steps:
                if row["loss"] > EXPLOSION_FACTOR * best_loss and "explosion" not in warned:
                    warned.add("explosion")
                    warn(step, "loss_explosion", f"loss {row['loss']:.4g} > {EXPLOSION_FACTOR:g}x the best "
                         f"{best_loss:.4g} after warm-up")
                best_loss = min(best_loss, row["loss"])

            # -- validation probe (rank 0), checkpoints, early stop ------------------------------------
            is_best = False
            due_eval = step % o.train.eval_every == 0 or step == stop_at
            if (due_eval or step % o.train.save_every == 0) and not _all_finite(model):
                raise diverged(step, "weights became non-finite")  # before the probe would measure NaN
            if due_eval and world.is_main:
                model.eval()
                last_eval = probe_validation(model, *probe, chunk=o.eval.batch_size)
                loggers.metrics(step, "val", last_eval)
                view.show_eval(step, last_eval)
                value = criterion_value(last_eval, select)
                if value > best_metric:
                    best_metric, is_best, stale = value, True, 0
                else:
                    stale += 1
            patience_stop = distributed.rank0_decides(bool(patience) and stale >= patience) if due_eval else False
            if step % o.train.save_every == 0 or step == stop_at or is_best or patience_stop:
                save(step, last_eval, is_best)
            if patience_stop:
                stopped_by_patience = True
                view.warn(f"step {step}: {select} has not improved for {stale} probes (train.patience = "
                          f"{patience}); stopping at the best checkpoint {read_index(run_dir).get('best')}")
                loggers.event(step, "early_stop", {"criterion": select, "probes_without_best": stale})
                break
    distributed.barrier()  # every rank returns after rank 0 has written its last checkpoint
    if world.distributed:
        distributed.stop()
    index = read_index(run_dir)
    return RunResult(run_dir=run_dir, step=step, stopped_early=stopped_by_patience or step < total_steps,
                     last_eval=last_eval, warnings=warnings, best=index.get("best"))


# ``wmkit.train(recipe, ...)`` is the Python API's train (wmkit.api); this module stays importable as is
from wmkit import _callable_module  # noqa: E402

_callable_module(__name__, "train")
