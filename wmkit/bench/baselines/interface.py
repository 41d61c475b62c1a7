"""What every edit embedder implements (:class:`EditEmbedder`), its inputs, and the limits of
reference §6 (docs/reference.md#s6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from wmkit.errors import WmkitError

#: reference §6 (docs/reference.md#s6): each side's text is cut to its first 2048 characters before tokenizing
MAX_CHARS = 2048
#: reference §6 (docs/reference.md#s6): at most 512 tokens per side
MAX_TOKENS = 512
#: texts per forward pass when embedding the benchmark set (not when timing: that is batch 1)
EMBED_BATCH = 16


class BaselineError(WmkitError):
    """A baseline could not be found or loaded (one line: which, why, what to do)."""


@dataclass
class EditPairs:
    """Edits to embed: the texts of both sides, and for wmkit its own tokens.

    ``before_tokens`` / ``after_tokens`` are ``[N, L]`` token ids of the checkpoint's domain (wmkit
    only); text embedders read ``before_text`` / ``after_text``.
    """

    before_text: Sequence[str]
    after_text: Sequence[str]
    before_tokens: np.ndarray | None = None
    after_tokens: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.before_text) if self.before_tokens is None else int(self.before_tokens.shape[0])

    def take(self, idx: Sequence[int]) -> "EditPairs":
        """The pairs at positions ``idx``, in that order."""
        idx = [int(i) for i in idx]
        return EditPairs(
            before_text=[self.before_text[i] for i in idx] if len(self.before_text) else [],
            after_text=[self.after_text[i] for i in idx] if len(self.after_text) else [],
            before_tokens=None if self.before_tokens is None else self.before_tokens[idx],
            after_tokens=None if self.after_tokens is None else self.after_tokens[idx])


@dataclass
class LatencyItem:
    """One batch-1 timing input: both sides of one pair, tokenized (tokenizing is not timed).

    ``tokens`` = (before, after) token counts; ``tokenize_s`` = seconds spent tokenizing both
    sides (reported separately, never part of the latency).
    """

    payload: Any
    tokens: tuple[int, int]
    tokenize_s: float | None = None


class EditEmbedder:
    """The interface of every edit embedder (wmkit's and the baselines)."""

    #: row name in tables and JSON
    name: str = ""
    #: "wmkit", "transformers", "sentence-transformers", "lexical" or "random"
    kind: str = ""
    #: tokens per side the model reads at most (None: no limit / not a token model)
    max_tokens: int | None = None
    #: the speed claim: wmkit's batch-1 latency must be at most 1/speed_target of this model's
    speed_target: int | None = None
    #: whether :meth:`embed` works (False for random-weight latency-only models)
    can_embed: bool = True

    def parameter_count(self) -> int | None:
        """Parameters the edit embedding reads (None when not a neural model)."""
        return None

    def embed(self, pairs: EditPairs, *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """``[N, D]`` float32 edit vectors; ``progress(n)`` is called as pairs complete."""
        raise NotImplementedError

    def latency_items(self, pairs: EditPairs) -> list[LatencyItem] | None:
        """Batch-1 timing inputs built from real pairs; None if this embedder is not timed."""
        return None

    def full_length_items(self, count: int, seed: int = 0) -> list[LatencyItem] | None:
        """``count`` timing inputs with both sides at :attr:`max_tokens` (random token ids)."""
        return None

    def run_item(self, item: LatencyItem) -> None:
        """Compute the edit embedding of one timing input (the timed call)."""
        raise NotImplementedError

    def identical_inputs(self, pairs: EditPairs) -> np.ndarray | None:
        """Bool [N]: pairs whose two sides reach the model identical (None: not applicable).

        For the text encoders that is "identical after the 2048-character cut" (reference defect
        D6 (docs/reference.md#d6): an edit beyond the cut is invisible); their edit vector is then exactly 0.
        """
        return None

    def describe(self) -> dict:
        """JSON-ready facts about this embedder (source, pooling, limits)."""
        return {"kind": self.kind, "max_tokens": self.max_tokens}


def _cut(texts: Sequence[str], max_chars: int) -> list[str]:
    return [(t or "")[:max_chars] for t in texts]


def identical_after_cut(pairs: EditPairs, max_chars: int) -> np.ndarray:
    """Bool [N]: the first ``max_chars`` characters of both sides are equal."""
    return np.array([(b or "")[:max_chars] == (a or "")[:max_chars]
                     for b, a in zip(pairs.before_text, pairs.after_text)], dtype=bool)
