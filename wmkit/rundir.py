"""Run directories: what counts as a run, who may write it, and how one is replaced without loss.

Described in full in docs/reliability.md.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from wmkit.errors import RunError

MARKER = ".wmkit-run"


def is_run(path: Path) -> bool:
    """True when ``path`` is a directory wmkit created as a run (it holds :data:`MARKER`)."""
    return (Path(path) / MARKER).is_file()


def is_empty_dir(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and not any(path.iterdir())


def write_marker(run_dir: Path) -> None:
    from wmkit import __version__

    (Path(run_dir) / MARKER).write_text(json.dumps({"wmkit_version": __version__, "created": time.time()}) + "\n")


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class RunLock:
    """An exclusive lock on one run directory, held by one process for the whole training."""

    def __init__(self, run_dir: Path):
        run_dir = Path(run_dir).absolute()
        self.run_dir = run_dir
        self.path = run_dir.parent / f".{run_dir.name}.lock"
        self.holder = run_dir.parent / f".{run_dir.name}.holder"
        self._lock = None

    def acquire(self) -> "RunLock":
        from filelock import FileLock, Timeout

        try:
            self.run_dir.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.path), timeout=0)
            self._lock.acquire()
        except Timeout:
            self._lock = None
            raise RunError(f"--out {self.run_dir}: in use by another wmkit process ({self._holder_text()}); "
                           f"wait for it to finish or stop it first") from None
        except OSError as exc:
            self._lock = None
            raise RunError(f"--out {self.run_dir}: cannot create its lock {self.path} ({_os_reason(exc)}); "
                           f"choose a writable --out") from None
        try:
            self.holder.write_text(json.dumps({"pid": os.getpid(), "since": time.time()}) + "\n")
        except OSError as exc:
            self.release()
            raise RunError(f"--out {self.run_dir}: cannot write beside it ({_os_reason(exc)}); "
                           f"choose a writable --out with free space") from None
        return self

    def _holder_text(self) -> str:
        try:
            info = json.loads(self.holder.read_text())
            return f"PID {int(info['pid'])}"
        except (OSError, ValueError, KeyError, TypeError):
            return "PID unknown"

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            self.holder.unlink(missing_ok=True)
        except OSError:
            pass
        self._lock.release()
        self._lock = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def recover(run_dir: Path) -> list[str]:
    """Clean what a killed process left around ``run_dir`` (call it holding the run's lock).

    Finishes a swap that was cut between its two renames, removes staging directories and
    partial checkpoint directories. Returns what it did, one phrase per action.
    """
    run_dir = Path(run_dir)
    done = []
    parent = run_dir.parent
    if parent.is_dir():
        olds = sorted(parent.glob(f".{run_dir.name}.old-*"))
        if olds and not run_dir.exists():
            os.rename(olds[-1], run_dir)  # the swap stopped after moving the old run aside: put it back
            done.append(f"restored {run_dir} from an interrupted replacement")
            olds = olds[:-1]
        for leftover in [*olds, *parent.glob(f".{run_dir.name}.new-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
            done.append(f"removed {leftover.name}")
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and (is_run(run_dir) or (run_dir / "config.json").is_file()):  # never a user's folder
        for partial in checkpoints.glob(".step-*"):
            shutil.rmtree(partial, ignore_errors=True)
            done.append(f"removed partial checkpoint {partial.name}")
    return done


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with Linux's ``renameat2(RENAME_EXCHANGE)``; False if unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


class Staged:
    """A new run being written beside the one it will replace (see :func:`stage`)."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.path = self.target.parent / f".{self.target.name}.new-{uuid.uuid4().hex[:8]}"

    def commit(self) -> Path:
        """Swap the staged run in for the target; the old run is deleted only afterwards.

        On Linux the two directories are exchanged in one ``renameat2(RENAME_EXCHANGE)`` call, so no
        instant exists without a run at the target; elsewhere (or on file systems without it) two
        renames, whose gap :func:`recover` closes after a crash."""
        if self.target.exists() and _exchange(self.path, self.target):
            shutil.rmtree(self.path, ignore_errors=True)  # now holds the old run
            return self.target
        aside = None
        if self.target.exists():
            aside = self.target.parent / f".{self.target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(self.target, aside)
        os.rename(self.path, self.target)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def stage(target: Path) -> Staged:
    """A fresh staging directory beside ``target`` holding the run marker."""
    staged = Staged(target)
    try:
        staged.path.mkdir(parents=True)
        write_marker(staged.path)
    except OSError as exc:
        staged.discard()
        raise RunError(f"--out {target}: cannot write the new run beside it ({_os_reason(exc)}); "
                       f"choose a writable --out with free space") from None
    return staged


def check_target(run_dir: Path, *, force: bool) -> None:
    """Refuse an ``--out`` that holds something, unless ``force`` and it is a wmkit run."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--out {run_dir}: is a file, not a directory; choose another --out")
    if not run_dir.exists() or is_empty_dir(run_dir):
        return
    if not is_run(run_dir):
        raise RunError(f"--out {run_dir}: is not empty and is not a wmkit run (no {MARKER} marker); "
                       f"--force replaces only wmkit runs: choose another --out")
    if not force:
        raise RunError(f"--out {run_dir}: already holds a run; pass --resume to continue it or --force "
                       f"to replace it")
