"""The simplest edit embedders: TF-IDF over the changed lines' tokens, and random vectors (chance level)."""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from typing import Sequence

import numpy as np

from wmkit.bench.baselines.interface import EditEmbedder, LatencyItem

_LEXICAL_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


def diff_tokens(before: str, after: str) -> Counter:
    """Token counts of the edit: ``-tok`` for tokens of removed lines, ``+tok`` for added lines.

    Removed / added lines are the multiset differences of the two files' lines (trailing spaces
    ignored): a line whose count went down was removed, up was added. Moving a line without
    changing it is no edit. Tokens: identifiers, digit runs, single punctuation characters.
    """
    old = Counter(line.rstrip() for line in (before or "").splitlines())
    new = Counter(line.rstrip() for line in (after or "").splitlines())
    counts: Counter = Counter()
    for sign, lines in (("-", old - new), ("+", new - old)):
        for line, times in lines.items():
            for tok in _LEXICAL_TOKEN.findall(line):
                counts[sign + tok] += times
    return counts


class LexicalDiffEmbedder(EditEmbedder):
    """TF-IDF of :func:`diff_tokens`, feature-hashed to ``dim`` signed buckets.

    weight(t) = (1 + ln tf(t)) · idf(t), idf(t) = ln((1 + N) / (1 + df(t))) + 1, with the
    document frequencies counted over the N edits passed to :meth:`embed` (queries and gallery:
    unsupervised, no labels). Token t goes to bucket ``crc32(t) mod dim`` with sign + or − from bit
    31 of the same hash (signed hashing keeps collisions unbiased). Reads the whole files: no
    2048-character cut, no token limit. An edit with no changed line is the zero vector.
    """

    name = "lexical"
    kind = "lexical"

    def __init__(self, dim: int = 4096):
        if dim < 1 or dim & (dim - 1):
            raise ValueError(f"dim must be a power of two, got {dim}")
        self.dim = dim
        self.idf: dict[str, float] = {}
        self.unseen_idf = 1.0

    def parameter_count(self) -> int:
        return 0

    def fit(self, docs: Sequence[Counter]) -> None:
        """Document frequencies over ``docs`` → :attr:`idf`."""
        n = len(docs)
        df: Counter = Counter()
        for doc in docs:
            df.update(doc.keys())
        self.idf = {tok: math.log((1 + n) / (1 + c)) + 1.0 for tok, c in df.items()}
        self.unseen_idf = math.log(1 + n) + 1.0

    def vectorize(self, doc: Counter) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        mask = self.dim - 1
        for tok, tf in doc.items():
            h = zlib.crc32(tok.encode("utf-8"))
            weight = (1.0 + math.log(tf)) * self.idf.get(tok, self.unseen_idf)
            vec[h & mask] += weight if (h >> 31) & 1 else -weight
        return vec

    def embed(self, pairs, *, progress=None) -> np.ndarray:
        docs = [diff_tokens(b, a) for b, a in zip(pairs.before_text, pairs.after_text)]
        self.fit(docs)
        out = np.stack([self.vectorize(d) for d in docs]) if docs else np.zeros((0, self.dim), np.float32)
        if progress:
            progress(len(docs))
        return out

    def identical_inputs(self, pairs) -> np.ndarray:
        return np.array([not diff_tokens(b, a) for b, a in zip(pairs.before_text, pairs.after_text)], dtype=bool)

    def latency_items(self, pairs) -> list[LatencyItem]:
        return [LatencyItem(payload=(b, a), tokens=(len(b or ""), len(a or "")))
                for b, a in zip(pairs.before_text, pairs.after_text)]

    def run_item(self, item: LatencyItem) -> None:
        self.vectorize(diff_tokens(*item.payload))

    def describe(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "max_tokens": None,
                "note": "TF-IDF of tokens on removed/added lines; whole files; token counts are characters"}


class RandomEmbedder(EditEmbedder):
    """Independent standard-normal vectors: every criterion's chance level."""

    name = "random"
    kind = "random"

    def __init__(self, dim: int = 128, seed: int = 0):
        self.dim = dim
        self.seed = seed

    def parameter_count(self) -> int:
        return 0

    def embed(self, pairs, *, progress=None) -> np.ndarray:
        out = np.random.default_rng(self.seed).standard_normal((len(pairs), self.dim)).astype(np.float32)
        if progress:
            progress(len(pairs))
        return out

    def describe(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "seed": self.seed, "max_tokens": None}
