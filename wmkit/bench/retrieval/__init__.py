"""``wmkit bench retrieval``: edit retrieval against foundation models, with CPU latency
(reference §6, docs/reference.md#s6).

Described in full in docs/retrieval.md (samples, edit embeddings, relevance and metrics, latency).
"""

from wmkit.bench.retrieval.embedder import WMKIT_CHUNK, WmkitEmbedder
from wmkit.bench.retrieval.latency import (DEFAULT_LATENCY_QUERIES, FULL_LENGTH_REPS, format_ratio, single_thread,
                                           speed_ratios, time_full_length, time_items)
from wmkit.bench.retrieval.relevance import (ACTION_CHOICES, CRITERIA, DEPTH, Annotations, parse_criterion,
                                             rank_gallery, relevance_matrix, score_ranking, select_actions)
from wmkit.bench.retrieval.run import RESULT_FORMAT, render_retrieval, run_retrieval_bench, write_result
from wmkit.bench.retrieval.sampling import (MIN_GALLERY, MIN_QUERIES, choose_sizes, content_duplicates,
                                            sample_queries_gallery, training_overlap)
from wmkit.encode import EDIT_EMBEDDINGS as EMBEDDINGS

__all__ = [
    "CRITERIA", "EMBEDDINGS", "ACTION_CHOICES", "RESULT_FORMAT", "choose_sizes", "sample_queries_gallery",
    "training_overlap", "content_duplicates", "Annotations", "parse_criterion", "relevance_matrix", "rank_gallery",
    "score_ranking", "select_actions", "WmkitEmbedder", "single_thread", "time_items", "format_ratio",
    "speed_ratios", "time_full_length", "run_retrieval_bench", "write_result", "render_retrieval",
]
