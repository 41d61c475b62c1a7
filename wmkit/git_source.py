"""``git:PATH[@REV]``: the history of a local git repository, mined into one row per (commit, changed file)."""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Iterator

from wmkit.errors import DataError

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
