"""The prepared-data cache: where it lives, its key, and cleaning up after killed processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from wmkit.data.store import FORMAT_VERSION
from wmkit.errors import DataError

def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$WMKIT_CACHE_DIR``, else ``~/.cache/wmkit``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("WMKIT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wmkit"


def cache_key(domain_fingerprint: str, source_fp: str, *, max_len: int, window: str, max_chars: int,
              min_changed_tokens: int, val_percent: int, limit: int, plugin: str = "",
              domain_version: str = "", keep_unchanged: bool = False, holdout_repos: tuple = (),
              python: str | None = None) -> str:
    """``plugin`` (``distribution==version``) and ``domain_version`` (:attr:`Domain.version`) make
    a plugin upgrade or a changed ``transition()`` rebuild the data instead of reusing it; ``python``
    (``major.minor``, default the running interpreter's) does the same for another interpreter, whose
    grammar (and so the code domain's AST vocabulary) may differ. ``source_fp`` carries the resolved
    revision of an ``hf:`` source (:func:`wmkit.sources.hub_revision`)."""
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    payload = json.dumps([FORMAT_VERSION, domain_fingerprint, source_fp, max_len, window, max_chars,
                          min_changed_tokens, val_percent, limit, plugin, domain_version, f"python{python}"]
                         + ([True] if keep_unchanged else []) + ([sorted(holdout_repos)] if holdout_repos else []))
    return hashlib.sha256(payload.encode()).hexdigest()


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "domain"


def _cache_error(root: Path, exc: OSError) -> DataError:
    return DataError(f"prepared-data cache {root}: cannot write ({exc.strerror or type(exc).__name__}); set "
                     f"WMKIT_CACHE_DIR to a writable folder with free space")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def clean_stale_temporaries(root: Path) -> list[str]:
    """Remove ``.tmp-KEY-PID-*`` and ``.trash-*`` directories left by killed processes (a live
    process's temporary is kept). Returns the names removed."""
    removed = []
    for path in list(root.glob(".tmp-*")) + list(root.glob(".trash-*")):
        parts = path.name.split("-")
        if path.name.startswith(".tmp-") and len(parts) >= 4 and parts[2].isdigit() and _pid_alive(int(parts[2])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
    return removed


def _discard(path: Path, root: Path) -> None:
    trash = root / f".trash-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)
