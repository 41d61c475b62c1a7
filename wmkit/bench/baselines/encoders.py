"""``transformers`` encoders as edit embedders (UnixCoder, CodeBERT, CodeT5+, anything AutoModel loads),
and encoders of a known shape with random weights, for latency without a download."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from wmkit.bench.baselines.interface import (EMBED_BATCH, MAX_CHARS, MAX_TOKENS, BaselineError, EditEmbedder,
                                             LatencyItem, _cut, identical_after_cut)

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
