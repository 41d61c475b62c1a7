"""Data sources: every scheme yields rows in the CommitPackFT schema (reference §1, docs/reference.md#s1).

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
from pathlib import Path
from typing import Any, Iterator, Mapping

from wmkit.errors import DataError
# the git and hub schemes have their own modules; their public names stay importable from here
from wmkit.git_source import (_git_target, _mine_git, _resolve_git, absolute_git_source, git_commit_dates,
                              git_commit_rows, git_toplevel)
from wmkit.hub_source import _hub_id, _read_hub, hub_revision

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
        if builder == "json":
            _check_first_line(path)
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


def _check_first_line(path: Path) -> None:
    """Refuse a JSON-lines file whose first row parses as JSON but is not an object: the datasets reader
    crashes the process on a first line of ``null`` (pyarrow's JSON reader, measured with datasets 4)."""
    import gzip

    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            fh = gzip.open(path, "rb")
        elif name.endswith(".zst"):
            import zstandard

            fh = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        else:
            fh = open(path, "rb")
        with fh:
            first = _first_row_line(fh)
    except Exception:  # noqa: BLE001 - unreadable, or not compressed as named: the reader says so, naming the file
        return
    try:
        value = json.loads(first)
    except ValueError:
        return  # not JSON at all: the reader's own error names it
    # a .json file may hold one array of rows; a JSON-lines row must be an object
    if not isinstance(value, dict) and not (isinstance(value, list) and ".jsonl" not in name):
        raise DataError(f"{path}: the first row is {json.dumps(value)[:40]}, not an object with CommitPackFT columns; "
                        f"each line must be one JSON object with old_contents and new_contents")


def _first_row_line(fh, chunk: int = 1 << 16, limit: int = 1 << 26) -> bytes:
    """The first non-blank line of a binary stream (zstandard's reader has no readline), reading at most
    ``limit`` bytes; what was read if no line ends within it."""
    buffer = bytearray()
    while len(buffer) < limit:
        block = fh.read(chunk)
        if not block:
            break
        start = len(buffer)
        buffer += block
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[:end])
            if line.strip():
                return line
            del buffer[:end + 1]
            start = 0
    return bytes(buffer)


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


def describe_sources() -> str:
    """One line per scheme, for help texts."""
    return ("jsonl:PATH[,PATH...] | parquet:PATH | hf:DATASET[/CONFIG][@REV] | git:PATH[@REV] | "
            "a path ending in .jsonl, .jsonl.gz, .jsonl.zst, .json or .parquet")


__all__ = ["open_rows", "source_fingerprint", "describe_sources", "git_commit_rows", "git_commit_dates", "git_toplevel", "absolute_git_source", "COLUMNS", "REQUIRED", "SCHEMES"]
