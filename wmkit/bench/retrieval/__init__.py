"""``wmkit bench retrieval``: edit retrieval against foundation models, with CPU latency
(reference §6, docs/reference.md#s6).

Protocol (what this module does, in order):

1. **Samples (defect D5, docs/reference.md#d5).** Queries and gallery come only from the validation split of
   the checkpoint's recorded data source (the run's ``config.json`` ``data.source``, else the
   recipe's; the same preparation, hence the same commit-hash split, as training). Validation rows
   whose id is also a training row id are dropped from the pool (with ``--data`` another source
   is benchmarked and the recorded one is prepared too, so rows the checkpoint trained on are
   dropped even if the other source calls them validation). The pool is shuffled with ``seed``;
   the first ``queries`` rows are queries, the next ``gallery`` the gallery (disjoint). The drawn
   rows are checked against every training row id and the overlap is reported (it must be 0:
   anything else stops the benchmark). Exact token duplicates of training pairs (reverts,
   cherry-picks) are counted and reported, not removed.
2. **Edit embeddings.** wmkit: ``target(after) − online(before)`` (the paper's form, default) or
   ``online(after) − online(before)`` (the reference's TAP scripts). Baselines: see
   :mod:`wmkit.bench.baselines` (2048-character cut, ≤512 tokens, mean pooling, after − before).
3. **Ranking.** All edit vectors L2-normalised; each query's top 10 gallery items by cosine through
   ``faiss.IndexFlatIP``.
4. **Relevance** (over the top 10 only): ``by_edit_type`` / ``by_joint`` — same label (a missing
   label, −1, is never relevant); ``cos@0.9`` / ``cos@0.95`` — cosine of the raw action vectors
   strictly above the threshold, on the 15-D vector or its first 7 dimensions
   (reference §2 (docs/reference.md#s2): for the code domain dims 0–6 of the 15-D vector *are* the 7-D vector,
   so ``--actions 7d`` slices).
5. **Metrics.** MRR@10 (1/rank of the first relevant item in the top 10, 0 if none), R@1, R@5.
6. **Latency.** One thread (``torch.set_num_threads(1)``), batch 1, both sides of a query (the
   whole edit embedding), tokenization excluded (timed and reported separately), two untimed
   warm-up calls; ``cpu_ms`` is the median over ``latency_queries`` real queries; ``cpu_ms_full`` the
   median over ``FULL_LENGTH_REPS`` inputs at each model's full length (512 tokens per side for
   the text encoders, ``data.max_len`` for wmkit), timed round-robin across models so that load
   changes hit every model alike; the basis of the printed speed ratios.

Sizes: when the validation pool is smaller than ``queries + gallery`` the gallery shrinks first
(a note is printed); if fewer than :data:`MIN_GALLERY` gallery rows would be left, both shrink in
proportion; fewer than ``MIN_QUERIES + MIN_GALLERY`` validation rows is an error.
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
