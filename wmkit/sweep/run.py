"""Running a sweep: one run (train in segments to each audited step, audit there) and the executors.

:func:`execute_run` is the unit of work, a plain function of a JSON-ready job so that any engine can
run it: the local executor hands it to a ``concurrent.futures`` process pool (``--jobs``), the Ray
executor to Ray tasks. Each run is an ordinary run directory inside the sweep directory; a run
interrupted anywhere resumes through ``wmkit train``'s own ``--resume`` (its checkpoints), and an
audit already written is not redone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

from wmkit.errors import WmkitError
from wmkit.recipe import RecipeOptions
from wmkit.sweep.plan import audit_targets

AUDITS_DIR = "audits"
LOGS_DIR = "logs"


def audit_file(run_dir: Path, label: str) -> Path:
    """Where a sweep keeps the audit of checkpoint ``label`` (``step-N`` or ``best``)."""
    return Path(run_dir) / AUDITS_DIR / f"{label}.json"


def latest_step(run_dir: Path) -> int:
    from wmkit.checkpoint import read_index

    if not (Path(run_dir) / "config.json").exists():
        return 0
    latest = read_index(Path(run_dir)).get("latest")
    return int(latest.split("-")[1]) if latest else 0


def execute_run(job: dict) -> dict:
    """Train and audit one sweep run; returns ``{"id", "state", "step", "audits", "error"}``.

    ``job``: ``sweep_dir``, ``run`` (id, recipe values, origin, overrides, env, steps), ``plan``
    (audit_at, val_size, full_val), ``threads``. Output of training and audits goes to
    ``SWEEP/logs/ID.log``. A :class:`WmkitError` (bad data, divergence) fails this run only.
    """
    sweep_dir, run = Path(job["sweep_dir"]), job["run"]
    run_dir = sweep_dir / run["id"]
    (sweep_dir / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / LOGS_DIR / f"{run['id']}.log", "a", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"sweep run {run['id']} started at {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
        try:
            audits = _train_and_audit(job, run_dir)
        except WmkitError as exc:
            print(f"error: {exc}", file=log)
            return {"id": run["id"], "state": "failed", "step": latest_step(run_dir), "audits": {}, "error": str(exc)}
    return {"id": run["id"], "state": "done", "step": latest_step(run_dir), "audits": audits, "error": None}


def _train_and_audit(job: dict, run_dir: Path) -> dict:
    import torch

    from wmkit.audit import run_audit, save_result
    from wmkit.plugins import get_host
    from wmkit.recipe import Recipe
    from wmkit.train import train

    run, plan = job["run"], job["plan"]
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    host = get_host()
    recipe = Recipe(values=run["recipe"], origin=run["origin"], overrides=run["overrides"], env=run["env"])
    total = run["steps"]
    stops, labels = audit_targets(plan["audit_at"], total)
    audits: dict[str, str] = {}

    def audit(label: str, target) -> None:
        path = audit_file(run_dir, label)
        if path.exists():
            audits[label] = str(path.relative_to(run_dir))
            return
        result = run_audit(target, full_val=plan["full_val"], val_size=plan["val_size"], progress=False,
                           host=host)
        save_result(result, path)
        audits[label] = str(path.relative_to(run_dir))

    for stop in stops:
        wanted = f"step-{stop}" in labels
        if latest_step(run_dir) < stop and not (wanted and audit_file(run_dir, f"step-{stop}").exists()):
            started = latest_step(run_dir) > 0
            # a run killed before its first checkpoint starts again from scratch
            train(recipe, out=run_dir, resume=started, force=not started and run_dir.exists(),
                  early_stop=stop if stop < total else None, host=host, live=False)
        if wanted:
            audit(f"step-{stop}", run_dir / "checkpoints" / f"step-{stop}")
    if "best" in labels:
        audit("best", run_dir)
    return audits


# ---------------------------------------------------------------------------------------------
# executors: each takes the jobs and calls on_result(result) as runs finish, on_start(id) as they start
# ---------------------------------------------------------------------------------------------


def _exit_with_parent(parent: int) -> None:
    """In a pool worker: exit when the sweep process is gone (killed), not leave a run half-owned."""

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _log_touched_since(job: dict, since: float) -> bool:
    """Whether the run's worker has started (it writes its log first); a pool's "running" future may
    still be queued."""
    try:
        return (Path(job["sweep_dir"]) / LOGS_DIR / f"{job['run']['id']}.log").stat().st_mtime >= since
    except OSError:
        return False


def run_local(jobs: list[dict], *, workers: int, on_start, on_result, poll) -> None:
    """Run ``jobs`` in a pool of ``workers`` processes (spawned: each run gets a fresh interpreter)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    since = time.time() - 1.0  # file times may be coarser than the clock
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        by_id = {job["run"]["id"]: job for job in jobs}
        pending = {pool.submit(execute_run, job): job["run"]["id"] for job in jobs}
        started: set[str] = set()
        while pending:
            done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            for future, run in list(pending.items()):
                if run not in started and (future.done() or future.running() and _log_touched_since(by_id[run], since)):
                    started.add(run)
                    on_start(run)
            for future in done:
                run = pending.pop(future)
                try:
                    on_result(future.result())
                except Exception as exc:  # a worker that died (killed, out of memory) fails its run only
                    on_result({"id": run, "state": "failed", "step": None, "audits": {},
                               "error": f"{type(exc).__name__}: {exc}"})
            poll()


RAY_HINT = "--executor ray needs Ray: pip install 'wmkit[ray]' (or pip install 'ray>=2.9')"
#: seconds to wait for a Ray cluster's address to answer
RAY_CONNECT_TIMEOUT = 10.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise WmkitError(RAY_HINT) from None
    return ray


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Refuse an address that does not answer within ``timeout`` s (``auto`` is left to Ray)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise WmkitError(f"--address {address!r}: expected HOST:PORT (the head node's GCS, e.g. 10.0.0.1:6379), "
                         f"ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise WmkitError(f"--address {address}: no Ray cluster answered within {timeout:.0f} s ({exc}); start one "
                         f"with `ray start --head` or check the address") from None


def run_ray(jobs: list[dict], *, address: str | None, gpus_per_run: float, on_start, on_result, poll) -> None:
    """Run every job as a Ray task asking for its run's CPU threads (``job["threads"]``) and
    ``gpus_per_run`` GPUs, on the cluster at ``address`` or on a local Ray instance started for this sweep."""
    ray = import_ray()
    passed = {k: v for k, v in os.environ.items() if k.startswith(("WMKIT_", "HF_", "WM_"))}
    kwargs = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": passed})
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = max(os.cpu_count() or 1, *(int(j["threads"]) for j in jobs))
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise WmkitError(f"ray: could not start or join a cluster ({str(exc).splitlines()[0]})") from None
    try:
        task = ray.remote(execute_run)
        pending = {task.options(num_cpus=int(job["threads"]), num_gpus=gpus_per_run).remote(job): job["run"]["id"]
                   for job in jobs}
        for run in pending.values():
            on_start(run)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                run = pending.pop(ref)
                try:
                    on_result(ray.get(ref))
                except Exception as exc:  # the task's worker died
                    on_result({"id": run, "state": "failed", "step": None, "audits": {},
                               "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"})
            poll()
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------
# what a running run is doing (read from its metrics.jsonl by the sweep process)
# ---------------------------------------------------------------------------------------------


def run_progress(run_dir: Path) -> dict:
    """The last step row and the last probe row of a run's ``metrics.jsonl`` (empty when none)."""
    path = Path(run_dir) / "metrics.jsonl"
    out: dict = {}
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 65536))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return out
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if "event" not in row and "step" not in out:
            out["step"] = row.get("step")
        if row.get("event") == "eval" and "eval" not in out:
            out["eval"] = row
        if "step" in out and "eval" in out:
            break
    return out


# ---------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------


class SweepView:
    """One rich table of runs (state, step, steps/s, latest probe) on a terminal; plain lines otherwise."""

    def __init__(self, state: dict, sweep_dir: Path, console, live: bool | None):
        self.state, self.sweep_dir, self.console = state, sweep_dir, console
        self.live_mode = console.is_terminal if live is None else live
        self.rates: dict[str, tuple[float, int]] = {}
        self.live = None

    def __enter__(self):
        if self.live_mode:
            from rich.live import Live

            self.live = Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
            self.live.start()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.update(self.table())
            self.live.stop()
        return False

    def _row(self, run_id: str, info: dict) -> list[str]:
        progress = run_progress(self.sweep_dir / info["dir"]) if info["state"] == "running" else {}
        step = progress.get("step") or info.get("step") or 0
        rate = ""
        if info["state"] == "running" and step:
            t0, s0 = self.rates.setdefault(run_id, (time.monotonic(), step))
            if step > s0 and time.monotonic() > t0:
                rate = f"{(step - s0) / (time.monotonic() - t0):.2f}"
        ev = progress.get("eval") or {}
        probe = (f"KNN@5 {ev['knn_at_5']:.3f} (random {ev['random_knn_at_5']:.3f}), delta cos {ev['delta_cos']:.3f}"
                 if ev else "")
        return [run_id, info["state"], f"{step}/{info['steps']}", rate, probe, (info.get("error") or "")[:60]]

    def table(self):
        from rich.table import Table

        table = Table(title=f"sweep {self.sweep_dir}", title_justify="left")
        for col in ("run", "state", "step", "steps/s", "latest probe", "error"):
            table.add_column(col)
        for run_id, info in self.state["runs"].items():
            table.add_row(*self._row(run_id, info))
        return table

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.table())

    def event(self, run_id: str) -> None:
        if self.live is None:
            info = self.state["runs"][run_id]
            extra = f": {info['error']}" if info.get("error") else ""
            print(f"sweep: {run_id} {info['state']} (step {info.get('step') or 0}/{info['steps']}){extra}",
                  flush=True)


def prepare_data(runs: list[dict]) -> None:
    """Prepare (cache) each distinct data configuration of the runs once, here, before any run starts:
    runs then read the cache instead of preparing it concurrently, and a tokenizer pool is never forked
    inside an engine's multi-threaded worker (Ray). A data error stops the sweep before it starts."""
    from wmkit.plugins import get_host
    from wmkit.runtime import load_data

    seen = set()
    for run in runs:
        key = json.dumps(run["recipe"]["data"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            load_data(run["recipe"], host=get_host(), progress=False)


def run_sweep(plan, runs: list[dict], sweep_dir: Path, *, executor: str = "local", jobs: int = 1,
              address: str | None = None, gpus_per_run: float = 0.0, console=None, live: bool | None = None) -> dict:
    """Run (or resume) every run of a validated plan; returns the final sweep state (also in sweep.json)."""
    from rich.console import Console

    from wmkit.sweep.plan import open_sweep, save_sweep

    console = console or Console()
    sweep_dir = Path(sweep_dir).resolve()
    if executor == "ray":
        import_ray()
        if address:
            check_ray_address(address)
    state = open_sweep(sweep_dir, plan, runs)  # refuses a changed plan before anything is written
    prepare_data(runs)
    save_sweep(sweep_dir, state)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    todo = []
    for run in runs:
        info = state["runs"][run["id"]]
        _, labels = audit_targets(plan.audit_at, run["steps"])
        if info["state"] == "done" and all(audit_file(sweep_dir / info["dir"], lbl).exists() for lbl in labels):
            continue
        info.update(state="pending", error=None)
        todo.append({"sweep_dir": str(sweep_dir), "run": run, "plan": plan.to_dict(),
                     "threads": RecipeOptions.of(run["recipe"]).train.threads or threads})
    save_sweep(sweep_dir, state)
    view = SweepView(state, sweep_dir, console, live)

    def on_start(run_id: str) -> None:
        state["runs"][run_id]["state"] = "running"
        save_sweep(sweep_dir, state)
        view.event(run_id)

    def on_result(result: dict) -> None:
        info = state["runs"][result["id"]]
        info.update(state=result["state"], audits=result.get("audits") or {}, error=result.get("error"))
        if result.get("step") is not None:
            info["step"] = result["step"]
        save_sweep(sweep_dir, state)
        view.event(result["id"])

    with view:
        if todo and executor == "ray":
            run_ray(todo, address=address, gpus_per_run=gpus_per_run, on_start=on_start, on_result=on_result,
                    poll=view.refresh)
        elif todo:
            run_local(todo, workers=max(1, jobs), on_start=on_start, on_result=on_result, poll=view.refresh)
    return state
