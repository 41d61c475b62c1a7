"""Embeddings of prepared rows for the audit, in chunks (:mod:`wmkit.encode` does the work)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from wmkit.encode import ENCODE_CHUNK
from wmkit.encode import OPTIONAL_PARTS as ALL_PARTS

@dataclass
class Encoded:
    """Embeddings of some rows as float32 NumPy arrays [N, D] (per-loop lists when asked)."""

    rows: np.ndarray
    online_before: np.ndarray
    online_after: np.ndarray | None
    target_before: np.ndarray | None
    target_after: np.ndarray
    pred: np.ndarray
    #: the state the predictor read (online(before), or an early loop's readout); predictions with
    #: shuffled actions start from it
    predictor_input: np.ndarray | None = None
    loops_before: list[np.ndarray] | None = None
    loops_after: list[np.ndarray] | None = None
    seconds: float = 0.0


def encode(model, data, rows: np.ndarray, *, loops: bool, parts: frozenset = ALL_PARTS, progress=None,
           label: str = "encoding", chunk: int = ENCODE_CHUNK) -> Encoded:
    """Encode ``rows`` of prepared ``data`` in chunks (:func:`wmkit.encode.encode_transitions`).

    ``parts`` names the optional embeddings wanted (:data:`ALL_PARTS`); those not asked for may come
    back as ``None``. ``loops`` adds the per-loop online readouts.
    """
    from wmkit.encode import encode_transitions

    task = progress.add_task(label, total=len(rows)) if progress is not None else None
    t0 = time.perf_counter()
    out = encode_transitions(model, _Rows(data.before, rows), _Rows(data.after, rows),
                             _Rows(data.actions, rows, np.float32), parts=parts, loops=loops, chunk=chunk,
                             progress=None if task is None else (lambda n: progress.advance(task, n)))
    return Encoded(rows=np.asarray(rows), seconds=time.perf_counter() - t0, **out)


class _Rows:
    """Rows ``rows`` of an array-like (a memory map), read one slice at a time."""

    def __init__(self, array, rows: np.ndarray, dtype=None):
        self.array, self.rows, self.dtype = array, np.asarray(rows), dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, s: slice) -> np.ndarray:
        return np.asarray(self.array[self.rows[s]], dtype=self.dtype)


def predict_with_actions(model, z_state: np.ndarray, data, action_rows: np.ndarray,
                         base: np.ndarray | None = None, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Predictions from ``z_state`` with the actions of prepared ``data`` rows ``action_rows`` (the
    action vector and, for action encoders that read the edit, those rows' states), in chunks
    without gradients. ``base`` is target(before) of the predicted rows, for models that start from it."""
    from wmkit.encode import predict_from

    return predict_from(model, z_state, _Rows(data.actions, action_rows, np.float32), _Rows(data.before, action_rows),
                        _Rows(data.after, action_rows), base=base, chunk=chunk)


def encode_targets(model, data, rows: np.ndarray, *, after_only: bool = True, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """The target encoder's readout of the after states of ``rows`` (``after_only=False``: before states)."""
    from wmkit.encode import encode_states

    return encode_states(model, _Rows(data.after if after_only else data.before, rows), target=True, chunk=chunk)
