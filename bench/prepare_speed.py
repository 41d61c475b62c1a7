"""How fast does :func:`wmkit.prepare.prepare` turn the shared Python commits into arrays?

Prepares ../shared/data/commits-py (train + val) for the ``code`` domain twice into a fresh cache
directory: once cold (read, filter, tokenize in a worker pool, write) and once warm (cache hit).
Prints both times, rows/s and the drop counts. Target on 2 CPU cores: cold <= 300 s, warm <= 5 s.

    python bench/prepare_speed.py [--workers N] [--max-len 512] [--window head|edit] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "commits-py"
COLD_TARGET_S, WARM_TARGET_S = 300.0, 5.0


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (the worker pool)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="tokenizing processes (default: all CPUs)")
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--window", choices=("head", "edit"), default="head")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many kept rows (0 = all)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train.jsonl.zst and val.jsonl.zst")
    args = parser.parse_args(argv)

    files = [args.data / "train.jsonl.zst", args.data / "val.jsonl.zst"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"skipped: needs ../shared/data/commits-py beside the checkout ({', '.join(missing)} absent)")
        return 0

    from wmkit.prepare import prepare
    from wmkit_code.domain import CodeDomain

    source = "jsonl:" + ",".join(str(f) for f in files)
    cache = Path(tempfile.mkdtemp(prefix="wmkit-bench-prepare-"))
    kwargs = dict(max_len=args.max_len, window=args.window, limit=args.limit, cache_dir=cache,
                  workers=args.workers, progress=sys.stderr.isatty())
    try:
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        cold = prepare(CodeDomain(), source, **kwargs)
        cold_s = time.perf_counter() - t0
        cold_cpu = _cpu_seconds() - cpu0
        t0 = time.perf_counter()
        warm = prepare(CodeDomain(), source, **kwargs)
        _ = int(warm.before[-1].sum()) + len(warm.ids)  # touch the arrays
        warm_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    counts = cold.meta["counts"]
    print(f"cpus available: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}"
          f"  workers: {cold.meta['workers']}  max_len: {args.max_len}  window: {args.window}")
    print(f"cold: {cold_s:.1f} s  ({counts['rows_read'] / cold_s:.0f} rows read/s, {counts['kept'] / cold_s:.0f} kept/s)"
          f"  target <= {COLD_TARGET_S:.0f} s: {'ok' if cold_s <= COLD_TARGET_S else 'MISSED'}")
    print(f"cold CPU time (this process + its workers): {cold_cpu:.1f} s; on {cold.meta['workers']} otherwise idle "
          f"cores that is at least {cold_cpu / cold.meta['workers']:.1f} s wall; load average now "
          f"{os.getloadavg()[0]:.1f} (other processes slow the wall time)")
    print(f"warm: {warm_s:.2f} s  target <= {WARM_TARGET_S:.0f} s: {'ok' if warm_s <= WARM_TARGET_S else 'MISSED'}")
    print(f"rows read {counts['rows_read']}, kept {counts['kept']} (train {counts['train']}, val {counts['val']}), "
          f"trajectories {cold.meta['trajectories']}")
    print("dropped: " + (", ".join(f"{k} {v}" for k, v in counts["dropped"].items()) or "none"))
    trunc = cold.meta["truncation"]
    print(f"identical after truncation (D6): {trunc['identical_after_truncation']} ({100 * trunc['rate']:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
