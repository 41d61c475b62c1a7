"""Prepared data on disk: the arrays and texts one preparation writes, and :class:`PreparedData` that reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wmkit.data.split import HOLDOUT
from wmkit.errors import DataError

if TYPE_CHECKING:  # annotations only: the builder imports this module
    from wmkit.data.workers import _Settings
    from wmkit.prepare import _Collector

#: bump when the on-disk layout or the meaning of a prepared array changes
FORMAT_VERSION = 4


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:  # an empty array cannot be memory-mapped
        return np.load(path)


class PreparedData:
    """Prepared arrays of one (domain, source, settings); see :mod:`wmkit.prepare`.

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


def _truncation_report(c: "_Collector") -> dict:
    """Pairs that the cut to ``max_len`` made identical (defect D6, docs/reference.md#d6), and
    what became of them."""
    windowed = c.kept + c.identical_dropped
    identical = c.identical + c.identical_dropped
    return {"identical_after_truncation": identical, "dropped": c.identical_dropped,
            "in_arrays": c.unchanged_kept, "rate": identical / windowed if windowed else 0.0}


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
