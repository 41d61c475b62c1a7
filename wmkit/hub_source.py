"""``hf:DATASET[/CONFIG][@REV]``: rows streamed from a Hugging Face Hub data set, and its resolved revision."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from wmkit.errors import DataError

def _hub_id(target: str) -> tuple[str, str | None, str | None]:
    """``DATASET[/CONFIG][@REV]`` -> (dataset id, config or None, revision or None)."""
    target, _, revision = target.partition("@")
    parts = [p for p in target.split("/") if p]
    config = "/".join(parts[2:]) or None
    return "/".join(parts[:2]), config, revision.strip() or None


_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _hub_cache() -> Path:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def hub_revision(name: str, revision: str | None) -> str:
    """The commit a Hub data set's ``revision`` (default ``main``) stands for, as far as it can be known.

    A 40-hex revision is a commit already. Online, the Hub says which commit the revision is now.
    Offline (or when the Hub cannot answer), the local snapshot's ref file (``refs/<revision>`` in the
    hub cache) names the commit last downloaded; failing that, the requested revision itself, marked
    ``unresolved:`` (a later resolved run then prepares its data anew rather than reuse it).
    """
    wanted = revision or "main"
    if _COMMIT.match(wanted):
        return wanted
    if not _offline_flag() and _hub_reachable(timeout=2.0):
        try:
            from huggingface_hub import HfApi

            sha = HfApi().dataset_info(name, revision=wanted, timeout=10).sha
            if sha:
                return str(sha)
        except Exception:  # unreachable, unknown, gated: the offline answer below is the one we have
            pass
    ref = _hub_cache() / f"datasets--{name.replace('/', '--')}" / "refs" / wanted
    try:
        sha = ref.read_text(encoding="utf-8").strip()
    except OSError:
        sha = ""
    return sha if _COMMIT.match(sha) else f"unresolved:{wanted}"


def _offline_flag() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the hub endpoint, so an unreachable hub fails in seconds, not minutes.

    Skipped (assumed reachable) when a proxy is configured: then only the real request can tell.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _read_hub(target: str) -> Iterator[dict]:
    from wmkit.sources import _LOCAL_HINT, _checked, _datasets, _reason  # the local-file helpers

    name, config, revision = _hub_id(target)
    unreachable = (f"hf:{target}: the Hugging Face Hub is unreachable (offline or no network), so dataset "
                   f"{name!r} cannot be streamed; {_LOCAL_HINT}")
    if _offline_flag() or not _hub_reachable():
        raise DataError(unreachable)
    datasets = _datasets()
    try:
        stream = datasets.load_dataset(name, config, split="train", streaming=True, revision=revision)
    except Exception as exc:
        if _is_connection_error(exc):
            raise DataError(unreachable) from exc
        raise DataError(f"hf:{target}: cannot load dataset {name!r}"
                        f"{f' config {config!r}' if config else ''} ({_reason(exc)}); {_LOCAL_HINT}") from exc
    return _checked(iter(stream), f"hf:{target}")


def _is_connection_error(exc: BaseException) -> bool:
    """A network failure (as opposed to, say, a dataset that does not exist)."""
    text = f"{type(exc).__name__} {exc}"
    return isinstance(exc, (ConnectionError, TimeoutError)) or any(
        word in text for word in ("OfflineModeIsEnabled", "LocalEntryNotFound", "Couldn't reach", "Connection",
                                  "Max retries", "timed out"))
