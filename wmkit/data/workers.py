"""Rows to token arrays, one chunk at a time, in this process or in a pool of worker processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from wmkit.data.filters import has_changed_tokens
from wmkit.data.window import fit_window
from wmkit.domain import SkipRow

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
                # the suffix tells the collector the cut made them equal (defect D6, docs/reference.md#d6)
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


def _pool(workers: int, domain, settings: _Settings):
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ctx.Pool(workers, initializer=_init_worker, initargs=(domain, settings))


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
