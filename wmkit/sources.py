"""Data sources: every scheme yields rows in the CommitPackFT schema (reference §1).

A row is a dict with ``commit, old_file, new_file, old_contents, new_contents, subject, message,
lang, license, repos`` and optionally ``split`` (any extra columns pass through). Schemes:

- ``jsonl:PATH[,PATH...]``, ``parquet:PATH[,PATH...]``, or a bare path ending in ``.jsonl``,
  ``.jsonl.gz``, ``.jsonl.zst``, ``.json`` or ``.parquet``; a directory stands for its
  ``*.jsonl*`` / ``*.json`` / ``*.parquet`` files. Read with the ``datasets`` JSON / Parquet
  builders in streaming mode (no Arrow cache is written), one file at a time so that a corrupt
  file can be named.
- ``hf:DATASET[/CONFIG][@REV]``, e.g. ``hf:bigcode/commitpackft/python`` -> ``load_dataset(
  "bigcode/commitpackft", "python", split="train", streaming=True, revision=REV)``.
- ``git:PATH[@REV]``: the history of a local repository, mined into one row per (non-merge commit,
  changed file): statuses M, R (rename, with edits) and A (old side blank) of regular files that
  the domain accepts. Rows come sorted by (file, commit time), so successive edits of one file are
  consecutive.

A domain may own further schemes: :meth:`wmkit.domain.Domain.rows` is asked first.
Every failure is a one-line :class:`wmkit.errors.DataError`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse

from wmkit.errors import DataError

#: the CommitPackFT columns; the first two are required, the others default to ""
COLUMNS = ("commit", "old_file", "new_file", "old_contents", "new_contents", "subject", "message", "lang",
           "license", "repos")
REQUIRED = ("old_contents", "new_contents")
SCHEMES = ("jsonl:", "parquet:", "hf:", "git:")
_JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst")
_PARQUET_SUFFIXES = (".parquet",)
_LOCAL_HINT = "pass local data instead: --data jsonl:PATH (JSON Lines in the CommitPackFT schema)"


# -- entry points ------------------------------------------------------------------------------
def open_rows(source: str, *, domain=None) -> Iterator[dict]:
    """Rows of ``source`` (see the module docstring). Raises :class:`DataError` on bad input.

    Path, scheme and repository problems are reported by this call; problems inside a file
    (corruption, missing columns) while the returned iterator is consumed.
    """
    if domain is not None:
        custom = domain.rows(source)
        if custom is not None:
            return _checked(iter(custom), source)
    kind, target = _split_scheme(source)
    if kind in ("jsonl", "parquet"):
        files = _local_files(target, kind, source)
        return _read_files(files, kind)
    if kind == "hf":
        return _read_hub(target)
    if kind == "git":
        return _mine_git(target, domain)
    raise AssertionError(kind)  # _split_scheme only returns known kinds


def source_fingerprint(source: str, *, domain=None) -> str:
    """A cheap, stable fingerprint of what ``source`` currently contains.

    Files: resolved path, size and mtime_ns of each file; git: repository path and the commit sha
    REV resolves to; hf: the dataset id, config and the revision it resolves to (see
    :func:`hub_revision`). The domain's own fingerprint wins when it has one.
    """
    if domain is not None:
        own = domain.source_fingerprint(source)
        if own is not None:
            return str(own)
    kind, target = _split_scheme(source)
    if kind in ("jsonl", "parquet"):
        files = _local_files(target, kind, source)
        parts = []
        for path in files:
            st = path.stat()
            parts.append([str(path), st.st_size, st.st_mtime_ns])
        digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]
        return f"{kind}:{digest}"
    if kind == "hf":
        name, config, revision = _hub_id(target)
        return f"hf:{name}{'/' + config if config else ''}@{hub_revision(name, revision)}"
    repo, rev = _git_target(target)
    top, sha = _resolve_git(repo, rev)
    return f"git:{top}@{sha}"


# -- scheme parsing ----------------------------------------------------------------------------
#: ``scheme://`` URLs wmkit does not read itself (a copy would be needed first)
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _refuse_url(source: str, target: str) -> None:
    match = _URL.match(target)
    if match:
        raise DataError(f"data source {source!r}: {match.group(1)}:// URLs are not read directly; copy the files "
                        f"here and pass jsonl:PATH or parquet:PATH (or a Hub data set as hf:ID)")


def _split_scheme(source: str) -> tuple[str, str]:
    source = source.strip()
    _refuse_url(source, source)
    for scheme in SCHEMES:
        if source.startswith(scheme):
            target = source[len(scheme):]
            if not target:
                raise DataError(f"data source {source!r}: nothing after {scheme!r}; e.g. {scheme}PATH")
            return scheme[:-1], target
    lowered = source.lower()
    if lowered.endswith(_PARQUET_SUFFIXES):
        return "parquet", source
    if lowered.endswith(_JSON_SUFFIXES):
        return "jsonl", source
    if os.path.isdir(source):
        return "jsonl", source  # a directory: its *.jsonl* / *.parquet files (decided per file)
    if ":" in source.split("/")[0] and not os.path.exists(source):
        scheme = source.split(":", 1)[0]
        raise DataError(f"data source {source!r}: unknown scheme {scheme + ':'!r}; valid schemes: "
                        f"{', '.join(s + '...' for s in SCHEMES)} (or a path ending in .jsonl[.gz|.zst]/.parquet)")
    if os.path.exists(source):
        raise DataError(f"data source {source!r}: cannot tell the format from the name; prefix it with "
                        f"jsonl: or parquet:")
    raise DataError(f"data source {source!r}: no such file, and not one of the schemes "
                    f"{', '.join(s + '...' for s in SCHEMES)}")


def _format_of(path: Path, default: str) -> str:
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_JSON_SUFFIXES):
        return "json"
    return "parquet" if default == "parquet" else "json"


def _local_files(target: str, kind: str, source: str) -> list[Path]:
    """The files a ``jsonl:``/``parquet:`` target names (comma-separated; directories expanded)."""
    files: list[Path] = []
    _refuse_url(source, target.strip())
    for part in [p.strip() for p in target.split(",") if p.strip()]:
        path = Path(os.path.expanduser(part))
        if any(ch in part for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(os.path.expanduser(part)))
            if not matched:
                raise DataError(f"data source {source!r}: {part!r} matches no files")
            files.extend(matched)
        elif path.is_dir():
            # a directory's plain .json files are metadata (e.g. manifest.json), not rows
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(
                _JSON_SUFFIXES + _PARQUET_SUFFIXES) and not p.name.lower().endswith(".json"))
            if not found:
                raise DataError(f"data source {source!r}: directory {str(path)!r} holds no .jsonl[.gz|.zst] "
                                f"or .parquet files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"data source {source!r}: {str(path)!r} does not exist")
    if not files:
        raise DataError(f"data source {source!r}: no files named")
    return [p.resolve() for p in files]


# -- local files -------------------------------------------------------------------------------
def _datasets():
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import datasets

    datasets.disable_progress_bars()
    # the builders log a read failure before raising it; we report it ourselves, naming the file
    for name in ("datasets.packaged_modules.json.json", "datasets.packaged_modules.parquet.parquet"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return datasets


def _read_files(files: list[Path], kind: str) -> Iterator[dict]:
    datasets = _datasets()
    for path in files:
        builder = _format_of(path, kind)
        if builder == "json" and path.name.lower().endswith(".zst"):
            _require_zstandard(path)
        try:
            empty = path.stat().st_size == 0
        except OSError as exc:
            raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
        if empty:
            raise DataError(f"{path}: the file is empty (0 bytes); pass a file with rows in the CommitPackFT schema")
        try:
            stream = datasets.load_dataset(builder, data_files=[str(path)], split="train", streaming=True)
            iterator = iter(stream)
        except Exception as exc:
            raise DataError(f"{path}: cannot read it as {builder} ({_reason(exc)}); is the file corrupt or "
                            f"truncated?") from exc
        first = True
        while True:
            try:
                row = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                raise DataError(f"{path}: corrupt or truncated {builder} file ({_reason(exc)})") from exc
            if first:
                _check_columns(row, str(path))
                first = False
            _check_types(row, str(path))
            yield _normalise(row)


def _require_zstandard(path: Path) -> None:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        raise DataError(f"{path}: reading .zst files needs the zstandard package (pip install zstandard)") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")[:300]


def _check_columns(row: Mapping[str, Any], where: str) -> None:
    missing = [c for c in REQUIRED if c not in row]
    if missing:
        present = ", ".join(sorted(row)[:12]) or "none"
        raise DataError(f"{where}: rows lack the required CommitPackFT column(s) {', '.join(missing)} "
                        f"(columns present: {present}); rows need old_contents and new_contents")


#: columns that must hold text (or be null) in every row
TEXT_COLUMNS = ("old_contents", "new_contents", "old_file", "new_file")


def _check_types(row: Mapping[str, Any], where: str) -> None:
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: a row is a {type(row).__name__}, not an object with CommitPackFT columns")
    for column in TEXT_COLUMNS:
        value = row.get(column)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: row {str(row.get('commit') or '?')[:40]!r}: {column} is a "
                            f"{type(value).__name__}, not text; every {column} must be a string")


def _normalise(row: Mapping[str, Any]) -> dict:
    out = dict(row)
    for column in COLUMNS:
        if out.get(column) is None:
            out[column] = ""
    return out


def _checked(rows: Iterator[Mapping[str, Any]], source: str) -> Iterator[dict]:
    first = True
    for row in rows:
        if first:
            _check_columns(row, f"data source {source!r}")
            first = False
        _check_types(row, f"data source {source!r}")
        yield _normalise(row)


# -- Hugging Face Hub --------------------------------------------------------------------------
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


# -- git histories -----------------------------------------------------------------------------
_RECORD, _FIELD = b"\x1e", b"\x1f"
_LOG_FORMAT = "--format=%x1e%H %ct%x1f%B%x1f"
_REGULAR = {b"100644", b"100755"}


def _git_target(target: str) -> tuple[str, str]:
    if os.path.exists(target) or "@" not in target:
        return target, "HEAD"
    path, _, rev = target.rpartition("@")
    return (path or "."), (rev or "HEAD")


def _git(repo: str, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise DataError("git:... sources need the git executable on PATH") from None


def _resolve_git(repo: str, rev: str) -> tuple[str, str]:
    """(repository top-level directory, full sha of REV) or a one-line :class:`DataError`."""
    if not os.path.isdir(repo):
        raise DataError(f"git:{repo}: no such directory")
    top = _git(repo, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise DataError(f"git:{repo}: not a git repository (git rev-parse failed)")
    sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if sha.returncode != 0:
        raise DataError(f"git:{repo}@{rev}: {rev!r} is not a commit in this repository (no commits yet, or a "
                        f"bad revision)")
    return top.stdout.decode().strip(), sha.stdout.decode().strip()


def _parse_log(raw: bytes) -> list[dict]:
    """File transitions from ``git log --raw -z`` output (one dict per commit x file)."""
    changes = []
    for order, record in enumerate(raw.split(_RECORD)[1:]):
        header, body, rest = record.split(_FIELD, 2)
        sha, _, when = header.decode().partition(" ")
        message = body.decode("utf-8", "replace").strip()
        fields = rest.split(b"\x00")
        i = 0
        while i < len(fields):
            meta = fields[i].lstrip(b"\n")
            i += 1
            if not meta.startswith(b":"):
                continue
            old_mode, new_mode, old_blob, new_blob, status = meta[1:].split(b" ")
            kind = status[:1]
            old_path = fields[i].decode("utf-8", "surrogateescape")
            i += 1
            new_path = old_path
            if kind in (b"R", b"C"):
                new_path = fields[i].decode("utf-8", "surrogateescape")
                i += 1
            if kind not in (b"M", b"R", b"A") or new_mode not in _REGULAR:
                continue
            if kind != b"A" and old_mode not in _REGULAR:
                continue
            if old_blob == new_blob:
                continue  # a pure rename: no edit
            changes.append({"commit": sha, "time": int(when or 0), "order": order, "status": kind.decode(),
                            "old_path": old_path if kind != b"A" else new_path, "new_path": new_path,
                            "old_blob": None if kind == b"A" else old_blob.decode(), "new_blob": new_blob.decode(),
                            "message": message})
    return changes


class _BlobReader:
    """``git cat-file --batch`` fed by a writer thread; blobs come back in request order."""

    def __init__(self, repo: str, shas: list[str]):
        self.proc = subprocess.Popen(["git", "-C", repo, "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.writer = threading.Thread(target=self._write, args=(shas,), daemon=True)
        self.writer.start()

    def _write(self, shas: list[str]) -> None:
        try:
            for sha in shas:
                self.proc.stdin.write(sha.encode() + b"\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def read(self) -> bytes | None:
        header = self.proc.stdout.readline()
        if not header:
            raise DataError("git cat-file stopped early while reading blobs")
        parts = header.split()
        if len(parts) < 3 or parts[1] != b"blob":
            return None
        size = int(parts[2])
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # the newline after the contents
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stdin):
            try:
                stream.close()
            except OSError:
                pass


def _decode(blob: bytes | None) -> str | None:
    if blob is None or b"\x00" in blob:
        return None
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _mine_git(target: str, domain, *, one_commit: bool = False) -> Iterator[dict]:
    repo, rev = _git_target(target)
    top, sha = _resolve_git(repo, rev)
    log = _git(top, "log", "--no-merges", "--raw", "-M", "--no-abbrev", "-z", "--no-color", _LOG_FORMAT,
               *(["-1"] if one_commit else []), sha)
    if log.returncode != 0:
        raise DataError(f"git:{target}: git log failed: {log.stderr.decode(errors='replace').strip()[:200]}")
    accepts_file = getattr(domain, "accepts_file", None) or (lambda path: True)
    changes = [c for c in _parse_log(log.stdout) if accepts_file(c["new_path"])]
    # (file, commit time); git log lists newer commits first, so a larger order is older on ties
    changes.sort(key=lambda c: (c["new_path"], c["time"], -c["order"]))
    return _git_rows(top, changes, domain)


def _git_rows(top: str, changes: list[dict], domain) -> Iterator[dict]:
    accepts_text = getattr(domain, "accepts_text", None) or (lambda path, old, new: True)
    requests = []
    for change in changes:
        if change["old_blob"] is not None:
            requests.append(change["old_blob"])
        requests.append(change["new_blob"])
    repo_name = os.path.basename(top.rstrip("/"))
    reader = _BlobReader(top, requests)
    try:
        for change in changes:
            old = "" if change["old_blob"] is None else _decode(reader.read())
            new = _decode(reader.read())
            if old is None or new is None:  # binary or not UTF-8
                continue
            if not accepts_text(change["new_path"], old, new):
                continue
            message = change["message"]
            yield {"commit": change["commit"], "old_file": change["old_path"], "new_file": change["new_path"],
                   "old_contents": old, "new_contents": new, "subject": message.split("\n", 1)[0],
                   "message": message, "lang": "", "license": "", "repos": repo_name}
    finally:
        reader.close()


def git_commit_rows(repo: str, rev: str, *, domain=None) -> Iterator[dict]:
    """The rows of one commit ``rev`` of the repository at ``repo`` (as ``git:`` mines them)."""
    return _mine_git(f"{repo}@{rev}", domain, one_commit=True)


def git_toplevel(target: str) -> str:
    """The top-level directory of a ``git:`` target's repository."""
    return _resolve_git(*_git_target(target))[0]


def absolute_git_source(target: str) -> str:
    """``git:TOPLEVEL[@REV]`` for a ``git:`` target given relative to the working directory."""
    repo, rev = _git_target(target)
    return f"git:{_resolve_git(repo, rev)[0]}" + ("" if rev == "HEAD" else f"@{rev}")


def git_commit_dates(target: str) -> dict[str, str]:
    """Commit sha -> committer date (ISO 8601) of every commit reachable from a ``git:`` target."""
    repo, rev = _git_target(target)
    top, sha = _resolve_git(repo, rev)
    log = _git(top, "log", "--format=%H %cI", sha)
    if log.returncode != 0:
        raise DataError(f"git:{target}: git log failed: {log.stderr.decode(errors='replace').strip()[:200]}")
    return dict(line.split(" ", 1) for line in log.stdout.decode().splitlines() if " " in line)


def describe_sources() -> str:
    """One line per scheme, for help texts."""
    return ("jsonl:PATH[,PATH...] | parquet:PATH | hf:DATASET[/CONFIG][@REV] | git:PATH[@REV] | "
            "a path ending in .jsonl, .jsonl.gz, .jsonl.zst, .json or .parquet")


__all__ = ["open_rows", "source_fingerprint", "describe_sources", "git_commit_rows", "git_commit_dates", "git_toplevel", "absolute_git_source", "COLUMNS", "REQUIRED", "SCHEMES"]
