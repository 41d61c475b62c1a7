"""Shared data preparation: rows -> filtered, tokenized, truncated, split arrays, cached on disk.

:func:`prepare` streams rows from :func:`wmkit.sources.open_rows` and applies the reference's
filters (reference §1, docs/reference.md#s1), counting every dropped row by reason:

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
keeps a window centred on the first token where before and after differ (defect D6, docs/reference.md#d6). How
many rows become identical only because of the cut is stored in ``meta["truncation"]`` (``dropped``: how many
of them ``no_token_change`` dropped; ``in_arrays``: identical pairs the arrays hold).

Split (defect D4 (docs/reference.md#d4), never tied to a training seed): a row's ``split`` column when present
(``train`` -> 0; ``val`` / ``valid`` / ``validation`` / ``test`` / ``dev`` / ``holdout`` -> 1), otherwise by
row id: ``int(sha256(("split:" + row_id).encode()).hexdigest()[:8], 16) % 100 < val_percent`` -> val, where
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

import os
import shutil
import time
import uuid
from collections import Counter, deque
from pathlib import Path

import numpy as np

from wmkit.errors import DataError, RecipeError
from wmkit.progress import PreparingView
from wmkit.recipe import DataOptions
from wmkit.sources import open_rows, source_fingerprint

# each step has its own module under wmkit.data; these names stay importable from wmkit.prepare
from wmkit.data.cache import _cache_error, _discard, _safe_name, cache_key, cache_root, clean_stale_temporaries
from wmkit.data.filters import changed_tokens, has_changed_tokens
from wmkit.data.split import (HOLDOUT, HOLDOUT_SALT, SPLIT_NAMES, _split_candidates, _split_key, _unique_ids,
                              hash_split)
from wmkit.data.store import FORMAT_VERSION, PreparedData, _write
from wmkit.data.window import first_difference, fit_window, window_start
from wmkit.data.workers import (WINDOW_SUFFIX, _default_workers, _pool, _process_chunk, _Settings, _worker_chunk,
                                tokenize_rows)

CHUNK_ROWS = 32


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
