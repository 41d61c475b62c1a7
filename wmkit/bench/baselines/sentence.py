"""sentence-transformers models as edit embedders (all-MiniLM-L6-v2 is bundled)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from wmkit.bench.baselines.encoders import _position_limit, _torch
from wmkit.bench.baselines.interface import (EMBED_BATCH, MAX_CHARS, MAX_TOKENS, BaselineError, EditEmbedder,
                                             LatencyItem, _cut, identical_after_cut)


class SentenceTransformerEmbedder(EditEmbedder):
    """A sentence-transformers model run through its own modules; ``embedding(after) − embedding(before)``.

    ``max_seq_length`` is raised (or lowered) to 512, within the position table, so every model
    reads the same ≤512 tokens per side (all-MiniLM-L6-v2 ships with 256).
    """

    kind = "sentence-transformers"

    def __init__(self, name: str, model, *, source: str = "", max_tokens: int = MAX_TOKENS,
                 max_chars: int = MAX_CHARS, batch_size: int = EMBED_BATCH, speed_target: int | None = None):
        self.name = name
        self.model = model.eval()
        self.source = source
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.speed_target = speed_target
        self.shipped_max_tokens = getattr(model, "max_seq_length", None)
        limit = max_tokens
        auto = self._auto_model()
        if auto is not None and _position_limit(auto.config):
            limit = min(limit, _position_limit(auto.config))
        model.max_seq_length = limit
        self.max_tokens = limit

    @classmethod
    def load(cls, name: str, path: str | Path, **kwargs) -> "SentenceTransformerEmbedder":
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise BaselineError(f"--baseline {name}: {path} is a sentence-transformers model but the package is not "
                                f"installed; pip install 'wmkit[baselines]'") from None
        try:
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BaselineError(f"--baseline {name}: cannot load a sentence-transformers model from {path}: "
                                f"{type(exc).__name__}: {first}") from None
        return cls(name, model, source=str(path), **kwargs)

    def _auto_model(self):
        try:
            first = self.model[0]
        except Exception:
            return None
        return getattr(first, "auto_model", None)

    def parameter_count(self) -> int:
        from wmkit.layers import count_parameters

        return count_parameters(self.model)

    def _features(self, text: str) -> dict:
        prep = getattr(self.model, "preprocess", None) or self.model.tokenize
        return prep([text])

    def _sentence_embedding(self, features: dict):
        return self.model(dict(features))["sentence_embedding"]

    def embed(self, pairs, *, progress=None) -> np.ndarray:
        out = []
        for texts in (pairs.before_text, pairs.after_text):
            vecs = self.model.encode(_cut(texts, self.max_chars), batch_size=self.batch_size, convert_to_numpy=True,
                                     show_progress_bar=False)
            out.append(np.asarray(vecs, dtype=np.float32))
            if progress:
                progress(len(texts) / 2)
        delta = out[1] - out[0]
        delta[self.identical_inputs(pairs)] = 0.0  # exact, not batch-padding rounding noise
        return delta

    def identical_inputs(self, pairs) -> np.ndarray:
        return identical_after_cut(pairs, self.max_chars)

    def latency_items(self, pairs) -> list[LatencyItem]:
        items = []
        for b, a in zip(_cut(pairs.before_text, self.max_chars), _cut(pairs.after_text, self.max_chars)):
            t0 = time.perf_counter()
            sides = [self._features(b), self._features(a)]
            seconds = time.perf_counter() - t0
            items.append(LatencyItem(payload=sides, tokens=tuple(int(s["input_ids"].shape[1]) for s in sides),
                                     tokenize_s=seconds))
        return items

    def full_length_items(self, count: int, seed: int = 0) -> list[LatencyItem]:
        torch = _torch()
        gen = torch.Generator().manual_seed(seed)
        template = self._features("x")
        vocab = len(self.model.tokenizer) if getattr(self.model, "tokenizer", None) is not None else 1000
        items = []
        for _ in range(count):
            sides = []
            for _side in range(2):
                feats = dict(template)
                ids = torch.randint(min(10, vocab - 1), vocab, (1, self.max_tokens), generator=gen)
                feats["input_ids"] = ids
                feats["attention_mask"] = torch.ones_like(ids)
                if "token_type_ids" in feats:
                    feats["token_type_ids"] = torch.zeros_like(ids)
                sides.append(feats)
            items.append(LatencyItem(payload=sides, tokens=(self.max_tokens, self.max_tokens)))
        return items

    def run_item(self, item: LatencyItem) -> None:
        torch = _torch()
        with torch.inference_mode():
            before, after = item.payload
            _ = self._sentence_embedding(after) - self._sentence_embedding(before)

    def describe(self) -> dict:
        return {"kind": self.kind, "source": self.source, "pooling": "the model's own modules",
                "max_tokens": self.max_tokens, "shipped_max_tokens": self.shipped_max_tokens,
                "max_chars": self.max_chars}
