"""The domain interface: what a kind of transition (code commits, kernel edits, yours) must provide.

A domain turns rows in the CommitPackFT schema (``old_contents``, ``new_contents``, ``commit``,
``repos``, ``new_file``, ... and optionally ``split``) into :class:`Transition` objects: token ids
for the state before and after, an action vector describing the edit, and integer labels used by
probes and retrieval. Everything else (reading sources, filtering, truncation, caching, the
train/validation split) is done once, for every domain, by :mod:`wmkit.prepare`.

A domain never sees torch: tokenizing and computing actions is plain Python / NumPy, so it can run
in worker processes while data is prepared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np


class SkipRow(Exception):
    """Raised by :meth:`Domain.transition` to drop a row; the message is the counted reason."""


@dataclass(frozen=True)
class Vocabulary:
    """Facts about a domain's token vocabulary that the model and checkpoints need.

    ``version`` is stored in every checkpoint; a checkpoint is only valid for data tokenized with
    the same vocabulary version.
    """

    size: int
    pad_id: int
    version: str
    ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # name -> [start, stop)


@dataclass
class Transition:
    """One prepared (state, action, next state) triple, before truncation to ``data.max_len``."""

    before: list[int]
    after: list[int]
    action: np.ndarray  # float32 [action_dim]
    labels: dict[str, int] = field(default_factory=dict)


class Domain(ABC):
    """Base class for domain plugins.

    Subclasses set the class attributes and implement :attr:`vocab`, :attr:`action_names`,
    :meth:`transition`. The domain's own settings (the ``options`` it registers, an
    :class:`wmkit.options.Options` class) live in the recipe's ``[data]`` table next to the core keys
    (``source``, ``max_len``, ...); ``__init__`` receives their validated record.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: bump when ``transition()`` (or anything else that shapes prepared data) changes: it is part of
    #: the prepared-data cache key, beside the plugin distribution's name and version
    version: ClassVar[str] = "1"
    #: the ``[data]`` options when registered without ``options=``: an Options class or ``{"key": Field(...)}``
    options: ClassVar[Any] = {}
    #: the source used when ``data.source = "default"``: must run offline with no flags
    default_source: ClassVar[str] = ""
    #: the recipe used by ``wmkit train --domain NAME`` when no recipe is given (a shipped recipe
    #: name, or a path)
    default_recipe: ClassVar[str] = ""
    #: label name -> class names, e.g. {"edit_type": ["ADD", "DELETE", "MODIFY"]}. A row without a
    #: label stores -1.
    label_names: ClassVar[dict[str, list[str]]] = {}
    #: the action inputs this domain offers to action encoders: ``vector`` (its action vector) and,
    #: for domains whose states are token sequences in which an edit shows as changed tokens,
    #: ``edit_tokens`` (the tokens the edit removed and added, read from the two states)
    action_inputs: ClassVar[tuple[str, ...]] = ("vector",)

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.settings = dict(options or {})

    # -- what the model needs -------------------------------------------------------------
    @property
    @abstractmethod
    def vocab(self) -> Vocabulary:
        """The token vocabulary (size, pad id, version)."""

    @property
    @abstractmethod
    def action_names(self) -> list[str]:
        """One short name per action dimension; ``len(action_names)`` is the action size."""

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    # -- turning rows into transitions ----------------------------------------------------
    @abstractmethod
    def transition(self, row: Mapping[str, Any]) -> Transition:
        """Tokenize both sides of ``row`` and compute its action and labels.

        Raise :class:`SkipRow` with a short reason to drop the row (it is counted, never fatal).
        """

    def tokenize(self, text: str) -> list[int]:
        """Token ids of one state; used by probes and tests. Domains normally override this."""
        raise NotImplementedError

    def accepts_file(self, path: str) -> bool:
        """Whether a file path from a ``git:`` history belongs to this domain."""
        return True

    def accepts_text(self, path: str, old: str, new: str) -> bool:
        """Second-stage filter for ``git:`` histories once both versions are read."""
        return True

    def rows(self, source: str) -> Iterable[Mapping[str, Any]] | None:
        """Rows for a source scheme this domain owns (e.g. an embedded generator), else ``None``.

        Returning ``None`` lets :func:`wmkit.sources.open_rows` handle the standard schemes
        (``jsonl:``, ``parquet:``, ``hf:``, ``git:``).
        """
        return None

    def source_fingerprint(self, source: str) -> str | None:
        """A stable fingerprint for a source this domain owns (see :meth:`rows`), else ``None``."""
        return None

    def fingerprint(self) -> str:
        """Everything about this domain that changes prepared data (vocab version, options)."""
        items = ",".join(f"{k}={self.settings[k]!r}" for k in sorted(self.settings))
        return f"{self.name}:{self.vocab.version}:{items}"
