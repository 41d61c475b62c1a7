"""``wmkit bench prepare DIR``: how fast :func:`wmkit.prepare.prepare` turns a folder of commits into arrays.

DIR holds ``train.jsonl.zst`` and ``val.jsonl.zst`` in the CommitPackFT schema (the issue's figure is
for the 39.5K-row commits-py set). It is prepared for the ``code`` domain twice into a fresh cache
directory: once cold (read, filter, tokenize in a worker pool, write) and once warm (cache hit).
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from wmkit.errors import DataError

#: issue 11's goals on 2 CPU cores, seconds
COLD_GOAL_S, WARM_GOAL_S = 120.0, 5.0


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (the worker pool)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def commits_files(data: Path) -> list[Path]:
    """The two files the benchmark reads; :class:`DataError` naming what is absent."""
    files = [Path(data) / "train.jsonl.zst", Path(data) / "val.jsonl.zst"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{data}: the prepare benchmark needs train.jsonl.zst and val.jsonl.zst there "
                        f"({', '.join(missing)} absent); pass a folder of commits in the CommitPackFT schema")
    return files


def time_prepare(data: Path, *, max_len: int = 512, window: str = "head", limit: int = 0,
                 workers: int | None = None, progress: bool = False) -> dict:
    """Cold and warm preparation times (seconds), CPU seconds, and the counts of what was kept."""
    from wmkit.plugins import get_host
    from wmkit.prepare import prepare

    files = commits_files(data)
    domain = get_host().domain("code", {})  # through the plugin host, as a run builds it
    source = "jsonl:" + ",".join(str(f) for f in files)
    cache = Path(tempfile.mkdtemp(prefix="wmkit-bench-prepare-"))
    kwargs = dict(max_len=max_len, window=window, limit=limit, cache_dir=cache, workers=workers, progress=progress)
    try:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        cold = prepare(domain, source, **kwargs)
        cold_s, cold_cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        t0 = time.perf_counter()
        warm = prepare(domain, source, **kwargs)
        _ = int(warm.before[-1].sum()) + len(warm.ids)  # touch the arrays
        warm_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    counts = cold.meta["counts"]
    return {"cold_s": cold_s, "warm_s": warm_s, "cold_cpu_s": cold_cpu, "workers": cold.meta["workers"],
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "max_len": max_len, "window": window, "rows_read": counts["rows_read"], "kept": counts["kept"],
            "train": counts["train"], "val": counts["val"], "dropped": dict(counts["dropped"]),
            "identical_after_truncation": cold.meta["truncation"]["identical_after_truncation"],
            "load_average": os.getloadavg()[0]}
