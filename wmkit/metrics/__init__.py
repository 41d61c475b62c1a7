"""Metrics on embeddings: pure functions of arrays, no model knowledge.

Every function takes NumPy arrays or torch tensors (rows are samples) and returns Python floats,
NumPy arrays or small result tuples. Computation is done in float64 NumPy except the nearest
neighbour search (faiss, float32, :mod:`wmkit.search`) and the linear classifier probe (torch).

The reference computes several quantities under one name (defect D9 of reference §11, docs/reference.md#d9);
here each form has its own function and docstring:

* :func:`effective_rank_uncentred` -- reference §5 (docs/reference.md#s5) (training probe and full-val audit):
  ``exp(H(s / Σs))`` of the singular values ``s`` of the *uncentred* matrix.
* :func:`effective_rank_centred` -- reference §7 (docs/reference.md#s7) (``isotropy_analysis``): centre the
  columns, then ``exp(H(s² / Σs²))``; also normalised by ``min(N − 1, D)`` (the rank a centred N×D matrix can
  reach; dividing by ``min(N, D)`` would leave a spurious floor, see
  anchors §3, docs/reference.md#anchors-s3).
* :func:`copy_cos_reference` (cross-encoder, what the reference code logs) versus
  :func:`copy_cos_paper` (paper Eq. 1, target encoder on both sides).

One module per concept; every name is importable from ``wmkit.metrics``:

* :mod:`~wmkit.metrics.arrays` -- array plumbing (:func:`as_numpy`, :func:`l2_normalize`);
* :mod:`~wmkit.metrics.rank` -- effective ranks and the spectrum;
* :mod:`~wmkit.metrics.knn` -- nearest-neighbour discriminability (KNN@k beside random);
* :mod:`~wmkit.metrics.cosines` -- cosines, copy baselines, lift;
* :mod:`~wmkit.metrics.geometry` -- signal ratio, trajectory and loop straightness;
* :mod:`~wmkit.metrics.probes` -- held-out linear probes (the only module that fits a model);
* :mod:`~wmkit.metrics.retrieval` -- MRR@10 and R@k of a ranking.
"""

from wmkit.metrics.arrays import as_numpy, l2_normalize
from wmkit.metrics.cosines import (copy_cos_paper, copy_cos_reference, cross_cosines, delta_cos, lift, mean_cos,
                                   mean_offdiag_self_cos, row_cosines, std_of_l2_normalized)
from wmkit.metrics.geometry import (consecutive_delta_cos, loop_straightness, signal_ratio, straightness,
                                    trajectory_pair_count)
from wmkit.metrics.knn import knn_accuracy, knn_ranks, nearest_indices, random_baseline
from wmkit.metrics.probes import ProbeResult, linear_delta_probe, linear_probe_accuracy, split_indices
from wmkit.metrics.rank import CentredRank, effective_rank_centred, effective_rank_uncentred, top_singular_share
from wmkit.metrics.retrieval import Relevance, mrr_at_10, recall_at_k, relevance_hits

__all__ = [
    "as_numpy", "l2_normalize", "row_cosines",
    "effective_rank_uncentred", "effective_rank_centred", "CentredRank", "top_singular_share",
    "random_baseline", "knn_ranks", "knn_accuracy",
    "mean_cos", "delta_cos", "copy_cos_reference", "copy_cos_paper", "lift", "cross_cosines",
    "mean_offdiag_self_cos", "std_of_l2_normalized",
    "signal_ratio", "ProbeResult", "split_indices", "linear_probe_accuracy", "linear_delta_probe",
    "consecutive_delta_cos", "straightness", "trajectory_pair_count", "loop_straightness",
    "relevance_hits", "mrr_at_10", "recall_at_k",
]
