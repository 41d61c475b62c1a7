"""Shared data preparation: rows -> filtered, tokenized, truncated, split arrays, cached on disk.

:func:`prepare` streams rows from :func:`wmkit.sources.open_rows` and applies the reference's
filters (reference §1), counting every dropped row by reason:

- ``blank``: both sides blank;
- ``too_long``: either side longer than ``max_chars`` characters;
- ``few_changed_tokens``: fewer than ``min_changed_tokens`` changed tokens (:func:`changed_tokens`);
- a :class:`wmkit.domain.SkipRow` reason raised by ``domain.transition``;
- ``tokenize_error``: any other exception in ``domain.transition`` (or a malformed result);
- ``no_token_change``: before and after are the same token sequence once cut to ``max_len`` (an
  edit of comments, docstrings or whitespace, or one beyond the window): the model cannot see the
  edit. ``keep_unchanged=True`` keeps them.

Tokenizing (``domain.transition``) runs in a ``multiprocessing`` pool, in chunks, in row order.

Each kept transition is cut to ``max_len`` tokens and padded with ``domain.vocab.pad_id``
(:func:`fit_window`): ``window="head"`` keeps the first tokens (the reference), ``window="edit"``
keeps a window centred on the first token where before and after differ (defect D6). How many rows
become identical only because of the cut is stored in ``meta["truncation"]`` (``dropped``: how many of
them ``no_token_change`` dropped; ``in_arrays``: identical pairs the arrays hold).

Split (defect D4, never tied to a training seed): a row's ``split`` column when present (``train``
-> 0; ``val`` / ``valid`` / ``validation`` / ``test`` / ``dev`` / ``holdout`` -> 1), otherwise by row id:
``int(sha256(("split:" + row_id).encode()).hexdigest()[:8], 16) % 100 < val_percent`` -> val, where
``row_id`` is the commit, or ``commit:new_file`` when the commit has several kept rows (a ``git:``
history yields one row per file of a commit). For one-file-per-commit data this is the rule the
shared CommitPackFT-style data sets were split with. Ids are these row ids (``#2``, ``#3`` appended
to exact repeats, which share their first occurrence's side). A split column that marks every row
``train`` (a training file passed alone) holds out ``val_percent`` of its rows by the same rule under
the salt ``holdout:`` instead, since such data was usually split with the ``split:`` rule already.
Rows of the repositories named in ``holdout_repos`` (their ``repos`` column) get split 2,
``holdout``: neither trained on nor used by the training probe, so a claim of quality can be
audited on repositories no training or tuning touched (``wmkit audit --split holdout``).

Rows of one file form a trajectory while consecutive kept rows share ``(repos, new_file)`` and the
previous row's ``new_contents`` equals this row's ``old_contents`` (compared by hash).

The result is cached under ``<cache>/prepared/<domain>/<key>/`` (``cache_dir``, else
``$WMKIT_CACHE_DIR``, else ``~/.cache/wmkit``), keyed by the domain fingerprint, the domain
plugin's ``distribution==version`` and :attr:`wmkit.domain.Domain.version`, the source fingerprint
and every setting above; it is written to a temporary directory and renamed into
place, so a cache directory is always complete. Arrays are ``.npy`` files memory-mapped on load.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from wmkit.domain import SkipRow
from wmkit.errors import DataError, RecipeError
from wmkit.progress import PreparingView
from wmkit.recipe import DataOptions
from wmkit.sources import open_rows, source_fingerprint

#: bump when the on-disk layout or the meaning of a prepared array changes
FORMAT_VERSION = 4
SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 1, "dev": 1, "holdout": 1}
CHUNK_ROWS = 32


# -- the changed-token filter -------------------------------------------------------------------
def _trim(a: list[str], b: list[str]) -> tuple[list[str], list[str]]:
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    return a[head:len(a) - tail], b[head:len(b) - tail]


def _words(lines) -> int:
    return sum(len(line.split()) for line in lines)


def changed_tokens(old: str, new: str) -> int:
    """Changed tokens of an edit: whitespace-separated words on the lines a line diff adds or removes.

    The common leading and trailing lines are trimmed, then ``difflib.SequenceMatcher`` (no junk
    heuristic) aligns the rest; every word on a deleted, inserted or replaced line counts once.
    This stands in for the reference's count of non-pad diff tokens (markers, up to 12 hashed words
    per changed or context line): it counts the words that changed, without markers or context.
    """
    a, b = _trim(old.splitlines(), new.splitlines())
    if not a or not b:
        return _words(a) + _words(b)
    count = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            count += _words(a[i1:i2]) + _words(b[j1:j2])
    return count


def has_changed_tokens(old: str, new: str, minimum: int) -> bool:
    """``changed_tokens(old, new) >= minimum``, usually without running the line diff.

    Lines whose multiset counts differ must be added or removed by any line diff, so their words are
    a lower bound; the words of all lines outside the common head and tail are an upper bound.
    """
    if minimum <= 0:
        return True
    a, b = _trim(old.splitlines(), new.splitlines())
    if _words(a) + _words(b) < minimum:
        return False
    ca, cb = Counter(a), Counter(b)
    lower = _words((ca - cb).elements()) + _words((cb - ca).elements())
    if lower >= minimum:
        return True
    return changed_tokens(old, new) >= minimum


# -- truncation ---------------------------------------------------------------------------------
def first_difference(a, b) -> int:
    """Index of the first position where token lists ``a`` and ``b`` differ (min length if a prefix)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if diff.size else n


def window_start(before, after, max_len: int, window: str) -> int:
    """First kept token: 0 for ``head``; for ``edit`` the first difference minus ``max_len // 2``,
    clipped to ``[0, max(len(before), len(after)) - max_len]`` (one offset for both sides)."""
    if window == "head":
        return 0
    longest = max(len(before), len(after))
    if longest <= max_len:
        return 0
    start = first_difference(before, after) - max_len // 2
    return max(0, min(start, longest - max_len))


def fit_window(before, after, max_len: int, window: str, pad_id: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Cut both sides to ``max_len`` tokens (see :func:`window_start`) and pad.

    Returns ``(before, after, identical)`` where ``identical`` is True when the cut sides are equal
    although the full sequences differ (defect D6).
    """
    start = window_start(before, after, max_len, window)
    cut_b, cut_a = before[start:start + max_len], after[start:start + max_len]
    identical = list(cut_b) == list(cut_a) and list(before) != list(after)
    out_b = np.full(max_len, pad_id, dtype=np.int32)
    out_a = np.full(max_len, pad_id, dtype=np.int32)
    out_b[:len(cut_b)] = cut_b
    out_a[:len(cut_a)] = cut_a
    return out_b, out_a, identical


# -- split --------------------------------------------------------------------------------------
#: the split value of rows of the held-out repositories
HOLDOUT = 2

def hash_split(key: str, val_percent: int, salt: str = "split:") -> int:
    """1 (val) if ``int(sha256(salt + key)[:8], 16) % 100 < val_percent`` else 0 (train)."""
    return int(int(hashlib.sha256((salt + key).encode()).hexdigest()[:8], 16) % 100 < val_percent)


#: salt of the hold-out drawn from a source whose split column is all "train": such data was often
#: split with the plain "split:" rule already (our mined commit sets are), so that rule would find no row
HOLDOUT_SALT = "holdout:"


def _split_key(row: Mapping[str, Any]) -> str:
    commit = str(row.get("commit") or "")
    if commit:
        return commit
    digest = hashlib.sha256()
    for part in (row.get("repos"), row.get("new_file"), row.get("old_contents"), row.get("new_contents")):
        digest.update(str(part or "").encode("utf-8", "surrogatepass") + b"\x00")
    return "content:" + digest.hexdigest()[:24]


def _split_column(row: Mapping[str, Any], key: str, source: str) -> int | None:
    """0/1 from the row's ``split`` column, or None when it has none."""
    value = row.get("split")
    if value is None or value == "":
        return None
    split = SPLIT_NAMES.get(str(value).strip().lower())
    if split is None:
        raise DataError(f"{source}: row {key}: split {value!r} is not one of {', '.join(SPLIT_NAMES)}; fix the "
                        f"split column or drop it to split by commit hash")
    return split


def _split_candidates(row: Mapping[str, Any], key: str, new_file: str, val_percent: int, source: str) -> tuple:
    """``(fixed, by_commit, by_file, holdout_by_commit, holdout_by_file)``: the column's split and the
    hash splits under either row id (which one applies is known once all rows are in: see
    :meth:`_Collector.finish`). The holdout pair is used when the column marks every row "train"."""
    fixed = _split_column(row, key, source)
    hashed = (hash_split(key, val_percent), hash_split(f"{key}:{new_file}", val_percent))
    holdout = ((hash_split(key, val_percent, HOLDOUT_SALT), hash_split(f"{key}:{new_file}", val_percent, HOLDOUT_SALT))
               if fixed == 0 else (0, 0))
    return (fixed, *hashed, *holdout)


# -- the worker side ------------------------------------------------------------------------------
NO_TOKEN_CHANGE = "no_token_change"
WINDOW_SUFFIX = ":window"
@dataclass(frozen=True)
class _Settings:
    max_len: int
    window: str
    pad_id: int
    vocab_size: int
    action_dim: int
    label_names: tuple[str, ...]
    min_changed_tokens: int
    keep_unchanged: bool = False


_WORKER: tuple[Any, _Settings] | None = None


def _init_worker(domain, settings: _Settings) -> None:
    global _WORKER
    _WORKER = (domain, settings)


def _worker_chunk(rows: list[dict]):
    domain, settings = _WORKER
    return _process_chunk(domain, settings, rows)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def _process_chunk(domain, s: _Settings, rows: list[dict]):
    """Tokenize a chunk. Returns (reasons, before, after, actions, labels, identical, hashes, error):
    ``reasons[i]`` is None for a kept row, else the drop reason; arrays hold the kept rows only;
    ``error`` describes the chunk's first ``tokenize_error`` (or is None)."""
    reasons: list[str | None] = []
    error = None
    before, after, actions, labels, identical, hashes = [], [], [], [], [], []
    for row in rows:
        old, new = row.get("old_contents") or "", row.get("new_contents") or ""
        if not has_changed_tokens(old, new, s.min_changed_tokens):
            reasons.append("few_changed_tokens")
            continue
        try:
            tr = domain.transition(row)
            action = np.asarray(tr.action, dtype=np.float32).reshape(-1)
            if action.shape[0] != s.action_dim or not np.isfinite(action).all():
                raise ValueError("bad action")
            b, a, same = fit_window(tr.before, tr.after, s.max_len, s.window, s.pad_id)
            if not s.keep_unchanged and np.array_equal(b, a):
                # the suffix tells the collector the cut made them equal (defect D6)
                reasons.append(NO_TOKEN_CHANGE + (WINDOW_SUFFIX if same else ""))
                continue
            if min(b.min(), a.min()) < 0 or max(b.max(), a.max()) >= s.vocab_size:
                raise ValueError("token id outside the vocabulary")
            lab = [int(tr.labels.get(name, -1)) if tr.labels else -1 for name in s.label_names]
        except SkipRow as exc:
            reasons.append(str(exc).strip() or "skipped")
            continue
        except Exception as exc:  # counted, never fatal (reference: "tokenizing raises an error")
            reasons.append("tokenize_error")
            if error is None:
                error = f"row {row.get('commit') or '?'} {row.get('new_file') or ''}: {type(exc).__name__}: {exc}"
                error = " ".join(error.split())[:300]
            continue
        reasons.append(None)
        before.append(b)
        after.append(a)
        actions.append(action)
        labels.append(lab)
        identical.append(same)
        hashes.append((_digest(old), _digest(new)))
    k = len(before)
    return (reasons,
            np.stack(before) if k else np.zeros((0, s.max_len), np.int32),
            np.stack(after) if k else np.zeros((0, s.max_len), np.int32),
            np.stack(actions) if k else np.zeros((0, s.action_dim), np.float32),
            np.asarray(labels, dtype=np.int16).reshape(k, len(s.label_names)),
            np.asarray(identical, dtype=bool),
            hashes, error)


def tokenize_rows(domain, rows: list[dict], *, max_len: int, window: str, min_changed_tokens: int):
    """Rows as the model sees them, outside any cache: ``(kept, before, after, actions)`` where ``kept``
    holds each row's drop reason (``None`` for a kept row) and the arrays hold the kept rows."""
    vocab = domain.vocab
    settings = _Settings(max_len=max_len, window=window, pad_id=int(vocab.pad_id), vocab_size=int(vocab.size),
                         action_dim=int(domain.action_dim), label_names=(), min_changed_tokens=min_changed_tokens)
    reasons, before, after, actions, *_ = _process_chunk(domain, settings, rows)
    return reasons, before, after, actions


# -- the prepared data ----------------------------------------------------------------------------
def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:  # an empty array cannot be memory-mapped
        return np.load(path)


class PreparedData:
    """Prepared arrays of one (domain, source, settings); see the module docstring.

    ``before``/``after`` int32 [N, max_len], ``actions`` float32 [N, action_dim], ``split`` uint8 [N]
    (0 train / 1 val), ``labels`` name -> int16 [N] (-1 = missing), ``trajectory`` int32 [N],
    ``ids`` (unique, stable row ids), ``meta`` (see :func:`prepare`).
    """

    def __init__(self, before, after, actions, split, labels, trajectory, ids, meta, *, path=None,
                 text_rows=None, text_offsets=None, text_blob=None):
        self.before, self.after, self.actions = before, after, actions
        self.split, self.labels, self.trajectory = split, labels, trajectory
        self.ids, self.meta, self.path = ids, meta, path
        self._text_rows = np.zeros(0, np.int64) if text_rows is None else text_rows
        self._text_offsets = np.zeros(1, np.int64) if text_offsets is None else text_offsets
        self._text_blob = text_blob
        self._text_pos: dict[int, int] | None = None

    def __len__(self) -> int:
        return int(self.before.shape[0])

    def __repr__(self) -> str:
        return (f"PreparedData({self.meta.get('domain')!r}, {len(self)} rows, max_len={self.meta.get('max_len')}, "
                f"train={self.meta['counts']['train']}, val={self.meta['counts']['val']})")

    def train_indices(self) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.split) == 0).astype(np.int64)

    def val_indices(self) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.split) == 1).astype(np.int64)

    def holdout_indices(self) -> np.ndarray:
        """Rows of the held-out repositories (``data.holdout_repos``)."""
        return np.flatnonzero(np.asarray(self.split) == HOLDOUT).astype(np.int64)

    def texts(self, i: int) -> tuple[str, str]:
        """``(before, after)`` raw texts of validation row ``i`` (only validation rows keep texts)."""
        if self._text_pos is None:
            self._text_pos = {int(r): k for k, r in enumerate(self._text_rows)}
        k = self._text_pos.get(int(i))
        if k is None:
            raise KeyError(f"row {i} has no stored texts: texts are kept for validation rows only")
        off = self._text_offsets
        blob = self._text_blob
        before = bytes(blob[off[2 * k]:off[2 * k + 1]]).decode("utf-8", "surrogatepass")
        after = bytes(blob[off[2 * k + 1]:off[2 * k + 2]]).decode("utf-8", "surrogatepass")
        return before, after

    @classmethod
    def load(cls, path) -> "PreparedData":
        """Load a prepared-data directory written by :func:`prepare` (arrays memory-mapped)."""
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            ids = json.loads((path / "ids.json").read_text(encoding="utf-8"))
            labels = {name: _load_array(path / f"label_{name}.npy") for name in meta["label_names"]}
            data = cls(_load_array(path / "before.npy"), _load_array(path / "after.npy"),
                       _load_array(path / "actions.npy"), _load_array(path / "split.npy"), labels,
                       _load_array(path / "trajectory.npy"), ids, meta, path=path,
                       text_rows=_load_array(path / "text_rows.npy"),
                       text_offsets=_load_array(path / "text_offsets.npy"),
                       text_blob=_load_array(path / "texts.npy"))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: prepared data is missing or unreadable ({type(exc).__name__}: {exc}); "
                            f"delete the directory to rebuild it") from exc
        n = len(data)
        if any(len(x) != n for x in (data.after, data.actions, data.split, data.trajectory, ids, *labels.values())):
            raise DataError(f"{path}: prepared arrays disagree in length; delete the directory to rebuild it")
        return data


# -- the cache ------------------------------------------------------------------------------------
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


# -- the builder ---------------------------------------------------------------------------------
class _Collector:
    """Merges chunk results in row order; knows when ``limit`` kept rows have been seen."""

    def __init__(self, limit: int):
        self.limit = limit
        self.rows_read = 0
        self.dropped: Counter = Counter()
        self.before: list[np.ndarray] = []
        self.after: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.identical = 0
        self.identical_dropped = 0
        self.unchanged_kept = 0
        self.splits: list[tuple] = []  # _split_candidates per kept row
        self.split: list[int] = []  # final, set by finish()
        self.keys: list[tuple[str, str]] = []  # (commit key, new_file)
        self.repos: list[str] = []
        self.ids: list[str] = []
        self.trajectory: list[int] = []
        self.texts: list[tuple[int, str, str]] = []
        self._prev: tuple | None = None
        self._next_traj = 0
        self.kept = 0
        self.done = False
        self.first_error: str | None = None

    def add(self, entries: list, rows_meta: list, result) -> None:
        """``entries`` in stream order: a drop reason (str) or the index of a row sent to the worker."""
        reasons, before, after, actions, labels, identical, hashes, error = result
        if error is not None and self.first_error is None:
            self.first_error = error
        keep_at = []  # positions in the result arrays to keep
        k = -1
        for entry in entries:
            if self.done:
                break
            self.rows_read += 1
            if isinstance(entry, str):
                self.dropped[entry] += 1
                continue
            reason = reasons[entry]
            if reason is not None:
                if reason.endswith(WINDOW_SUFFIX):
                    reason = reason[:-len(WINDOW_SUFFIX)]
                    self.identical_dropped += 1
                self.dropped[reason] += 1
                continue
            k += 1
            keep_at.append(k)
            meta = rows_meta[entry]
            self._keep(meta, hashes[k], bool(identical[k]))
            self.unchanged_kept += int(np.array_equal(before[k], after[k]))
            if self.limit and self.kept >= self.limit:
                self.done = True
        if keep_at:
            take = np.asarray(keep_at)
            full = len(keep_at) == before.shape[0]
            self.before.append(before if full else before[take])
            self.after.append(after if full else after[take])
            self.actions.append(actions if full else actions[take])
            self.labels.append(labels if full else labels[take])

    def _keep(self, meta: tuple, hashes: tuple[bytes, bytes], identical: bool) -> None:
        key, new_file, repos, splits, texts = meta
        old_hash, new_hash = hashes
        prev = self._prev
        if prev is not None and prev[0] == repos and prev[1] == new_file and prev[2] == old_hash:
            traj = self.trajectory[-1]
        else:
            traj = self._next_traj
            self._next_traj += 1
        self._prev = (repos, new_file, new_hash)
        if texts is not None:  # a validation row under some row id
            self.texts.append((self.kept, texts[0], texts[1]))
        self.trajectory.append(traj)
        self.splits.append(splits)
        self.keys.append((key, new_file))
        self.repos.append(repos)
        self.identical += int(identical)
        self.kept += 1

    def finish(self, holdout_repos: frozenset = frozenset()) -> None:
        """Fix row ids and splits now that every kept row is known; keep validation and hold-out texts only."""
        per_commit = Counter(key for key, _ in self.keys)
        self.ids = _unique_ids(self.keys, per_commit)
        # A split column that marks every row "train" (e.g. only train.jsonl.zst was passed) would
        # leave nothing held out: then the hash rule holds out val_percent of those rows instead.
        self.split_rule = "column" if any(c[0] is not None for c in self.splits) else "hash"
        if self.splits and all(c[0] == 0 for c in self.splits):
            self.splits = [(None, c[3], c[4]) for c in self.splits]
            self.split_rule = f"hash '{HOLDOUT_SALT}' (the split column has no validation rows)"
        self.split = [fixed if fixed is not None else (by_commit if per_commit[key] == 1 else by_file)
                      for (fixed, by_commit, by_file, *_), (key, _) in zip(self.splits, self.keys)]
        if holdout_repos:
            self.split = [HOLDOUT if repo in holdout_repos else split for split, repo in zip(self.split, self.repos)]
        self.texts = [t for t in self.texts if self.split[t[0]] in (1, HOLDOUT)]


def _unique_ids(keys: list[tuple[str, str]], per_commit: Counter) -> list[str]:
    """``commit`` when it appears once, else ``commit:new_file`` (``#2``, ``#3``... on exact repeats)."""
    seen: Counter = Counter()
    ids = []
    for key, new_file in keys:
        base = key if per_commit[key] == 1 else f"{key}:{new_file}"
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return ids


def _pool(workers: int, domain, settings: _Settings):
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ctx.Pool(workers, initializer=_init_worker, initargs=(domain, settings))


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def prepare(domain, source: str, *, max_len: int, window: str = "head", max_chars: int = 40000,
            min_changed_tokens: int = 5, val_percent: int = 10, limit: int = 0, keep_unchanged: bool = False,
            holdout_repos: tuple = (), cache_dir: str | Path | None = None, progress: bool = True,
            workers: int | None = None, plugin: str = "") -> PreparedData:
    """Prepared (cached) data of ``source`` for ``domain``; see the module docstring.

    ``workers`` = tokenizing processes (default: the CPUs this process may use; 1 = in-process).
    ``meta`` holds: domain, source, source_fingerprint, fingerprint, vocab_version, vocab_size,
    pad_id, action_dim, action_names, label_names, max_len, window, max_chars, min_changed_tokens,
    val_percent, limit, cache_key, counts {rows_read, kept, train, val, dropped {reason: n}},
    truncation {identical_after_truncation, rate}, seconds, workers.
    """
    DataOptions.fields["window"].check(window, "data.window")
    if max_len < 1:
        raise RecipeError(f"data.max_len: must be at least 1, got {max_len}")
    if not 0 <= val_percent <= 100:
        raise RecipeError(f"data.val_percent: must be within 0..100, got {val_percent}")
    source_fp = source_fingerprint(source, domain=domain)
    fingerprint = domain.fingerprint()
    key = cache_key(fingerprint, source_fp, max_len=max_len, window=window, max_chars=max_chars,
                    min_changed_tokens=min_changed_tokens, val_percent=val_percent, limit=limit, plugin=plugin,
                    domain_version=str(getattr(domain, "version", "")), keep_unchanged=keep_unchanged,
                    holdout_repos=tuple(holdout_repos))
    root = cache_root(cache_dir) / "prepared" / _safe_name(domain.name)
    final = root / key
    if (final / "meta.json").is_file():
        try:
            return PreparedData.load(final)
        except DataError:
            _discard(final, root)  # damaged by hand: rebuild
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(root)
        tmp = root / f".tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise _cache_error(root, exc) from None
    try:
        _build(domain, source, tmp, max_len=max_len, window=window, max_chars=max_chars,
                      min_changed_tokens=min_changed_tokens, val_percent=val_percent, limit=limit,
                      keep_unchanged=keep_unchanged, holdout_repos=frozenset(holdout_repos), progress=progress, workers=workers,
                      meta_base={"source_fingerprint": source_fp, "fingerprint": fingerprint, "cache_key": key,
                                 "holdout_repos": sorted(holdout_repos)})
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: use its copy
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.filename and str(root) in str(exc.filename):
            raise _cache_error(root, exc) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedData.load(final)


def _truncation_report(c: "_Collector") -> dict:
    """Pairs that the cut to ``max_len`` made identical (defect D6), and what became of them."""
    windowed = c.kept + c.identical_dropped
    identical = c.identical + c.identical_dropped
    return {"identical_after_truncation": identical, "dropped": c.identical_dropped,
            "in_arrays": c.unchanged_kept, "rate": identical / windowed if windowed else 0.0}
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


def _build(domain, source: str, out: Path, *, max_len: int, window: str, max_chars: int, min_changed_tokens: int,
           val_percent: int, limit: int, keep_unchanged: bool, holdout_repos: frozenset, progress: bool,
           workers: int | None, meta_base: dict) -> dict:
    t0 = time.perf_counter()
    label_names = tuple(domain.label_names)
    vocab = domain.vocab
    settings = _Settings(max_len=max_len, window=window, pad_id=int(vocab.pad_id), vocab_size=int(vocab.size),
                         action_dim=int(domain.action_dim), label_names=label_names,
                         min_changed_tokens=min_changed_tokens, keep_unchanged=bool(keep_unchanged))
    workers = _default_workers() if workers is None else max(1, int(workers))
    collector = _Collector(limit)
    # the pool is forked before anything else starts threads (the datasets reader, the progress bar)
    pool = _pool(workers, domain, settings) if workers > 1 else None
    bar = None
    try:
        rows = open_rows(source, domain=domain)
        bar = PreparingView(progress, source if len(source) <= 48 else "…" + source[-47:])
        in_flight: deque = deque()
        max_in_flight = 3 * workers
        entries: list = []
        chunk: list[dict] = []
        chunk_meta: list[tuple] = []
        sent_any = False

        def flush(final: bool) -> None:
            nonlocal entries, chunk, chunk_meta, sent_any
            if not entries:
                return
            if pool is not None and (sent_any or not final):
                in_flight.append((entries, chunk_meta, pool.apply_async(_worker_chunk, (chunk,))))
                sent_any = True
            else:  # everything fitted in one chunk: not worth a round trip to a worker
                in_flight.append((entries, chunk_meta, _Done(_process_chunk(domain, settings, chunk))))
            entries, chunk, chunk_meta = [], [], []

        def drain(keep: int) -> None:
            while len(in_flight) > keep and not collector.done:
                done_entries, done_meta, result = in_flight.popleft()
                collector.add(done_entries, done_meta, result.get())
                bar.update(collector.rows_read, collector.kept)

        for row in rows:
            old = row.get("old_contents") or ""
            new = row.get("new_contents") or ""
            path = str(row.get("new_file") or row.get("old_file") or "")
            if path and not domain.accepts_file(path):
                entries.append("other_file_type")  # e.g. CUDA rows handed to the code domain
            elif not old.strip() and not new.strip():
                entries.append("blank")
            elif len(old) > max_chars or len(new) > max_chars:
                entries.append("too_long")
            else:
                split_key = _split_key(row)
                new_file = str(row.get("new_file") or "")
                splits = _split_candidates(row, split_key, new_file, val_percent, source)
                entries.append(len(chunk))
                chunk.append(row)
                repo = str(row.get("repos") or "")
                chunk_meta.append((split_key, new_file, repo, splits,
                                   (old, new) if 1 in splits or repo in holdout_repos else None))
                if len(chunk) >= CHUNK_ROWS:
                    flush(final=False)
                    drain(max_in_flight)
                    if collector.done:
                        break
            if len(entries) >= 50 * CHUNK_ROWS:  # a long run of pre-filter drops
                flush(final=False)
                drain(max_in_flight)
                if collector.done:
                    break
        if not collector.done:
            flush(final=True)
            drain(0)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.close()
    collector.finish(holdout_repos)
    counts = _counts(collector)
    missing = sorted(set(holdout_repos) - set(collector.repos))
    if missing:
        present = sorted(set(collector.repos))
        raise DataError(f"data.holdout_repos: {', '.join(missing)} not among the repositories of {source} "
                        f"({len(present)}: {', '.join(present[:12])}{', ...' if len(present) > 12 else ''}); "
                        f"name repositories exactly as its repos column does")
    if collector.kept == 0:
        bar.close()
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(counts["dropped"].items())) or "none"
        first = f"; first tokenize error: {collector.first_error}" if collector.first_error else ""
        raise DataError(f"data source {source!r}: no rows left after filtering ({counts['rows_read']} read; dropped: "
                        f"{dropped}){first}; check the source, or relax data.max_chars / data.min_changed_tokens")
    meta = _write(out, domain, source, collector, counts, settings, max_chars=max_chars, val_percent=val_percent,
                  limit=limit, workers=workers, seconds=time.perf_counter() - t0, meta_base=meta_base)
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(counts["dropped"].items())) or "none"
    held = f" / {counts['holdout']} held-out repositories" if counts["holdout"] else ""
    bar.close(f"prepared {counts['kept']} {domain.name} transitions ({counts['train']} train / {counts['val']} val{held}) "
              f"from {source} in {meta['seconds']:.1f}s; read {counts['rows_read']}, dropped: {dropped}; "
              f"split by {counts['split_rule']}")
    return meta


class _Done:
    """An already computed chunk result with the ``AsyncResult.get`` interface."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def _counts(c: _Collector) -> dict:
    sides = Counter(c.split)
    return {"rows_read": c.rows_read, "kept": c.kept, "train": sides[0], "val": sides[1], "holdout": sides[HOLDOUT],
            "split_rule": getattr(c, "split_rule", "hash"), "dropped": dict(sorted(c.dropped.items()))}


def _write(out: Path, domain, source: str, c: _Collector, counts: dict, s: _Settings, *, max_chars: int,
           val_percent: int, limit: int, workers: int, seconds: float, meta_base: dict) -> dict:
    def cat(parts, shape_tail, dtype):
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros((0, *shape_tail), dtype)

    np.save(out / "before.npy", cat(c.before, (s.max_len,), np.int32))
    np.save(out / "after.npy", cat(c.after, (s.max_len,), np.int32))
    np.save(out / "actions.npy", cat(c.actions, (s.action_dim,), np.float32))
    np.save(out / "split.npy", np.asarray(c.split, dtype=np.uint8))
    np.save(out / "trajectory.npy", np.asarray(c.trajectory, dtype=np.int32))
    labels = cat(c.labels, (len(s.label_names),), np.int16)
    for j, name in enumerate(s.label_names):
        np.save(out / f"label_{name}.npy", np.ascontiguousarray(labels[:, j]))
    blobs, offsets, pos = [], [0], 0
    for _, before, after in c.texts:
        for text in (before, after):
            data = text.encode("utf-8", "surrogatepass")
            blobs.append(data)
            pos += len(data)
            offsets.append(pos)
    np.save(out / "text_rows.npy", np.asarray([r for r, _, _ in c.texts], dtype=np.int64))
    np.save(out / "text_offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(out / "texts.npy", np.frombuffer(b"".join(blobs), dtype=np.uint8))
    (out / "ids.json").write_text(json.dumps(c.ids), encoding="utf-8")
    vocab = domain.vocab
    meta = {
        "format_version": FORMAT_VERSION,
        "domain": domain.name, "source": source, **meta_base,
        "vocab_version": vocab.version, "vocab_size": int(vocab.size), "pad_id": int(vocab.pad_id),
        "action_dim": s.action_dim, "action_names": list(domain.action_names),
        "label_names": list(s.label_names), "label_classes": {k: list(v) for k, v in domain.label_names.items()},
        "max_len": s.max_len, "window": s.window, "max_chars": max_chars, "min_changed_tokens": s.min_changed_tokens,
        "val_percent": val_percent, "limit": limit, "keep_unchanged": s.keep_unchanged,

        "counts": counts,
        "truncation": _truncation_report(c),
        "trajectories": int(max(c.trajectory) + 1) if c.trajectory else 0,
        "first_tokenize_error": c.first_error,
        "seconds": round(seconds, 3), "workers": workers,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta
