"""Edit embedders the retrieval benchmark compares wmkit against (reference §6, docs/reference.md#s6).

Described in full in docs/retrieval.md#baselines.
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
