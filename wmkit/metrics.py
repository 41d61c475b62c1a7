"""Metrics on embeddings: pure functions of arrays, no model knowledge.

Every function takes NumPy arrays or torch tensors (rows are samples) and returns Python floats,
NumPy arrays or small result tuples. Computation is done in float64 NumPy except the nearest
neighbour search (faiss, float32, :mod:`wmkit.search`) and the linear classifier probe (torch).

The reference computes several quantities under one name (defect D9 of reference §11); here each
form has its own function and docstring:

* :func:`effective_rank_uncentred` -- reference §5 (training probe and full-val audit):
  ``exp(H(s / Σs))`` of the singular values ``s`` of the *uncentred* matrix.
* :func:`effective_rank_centred` -- reference §7 (``isotropy_analysis``): centre the columns, then
  ``exp(H(s² / Σs²))``; also normalised by ``min(N − 1, D)`` (the rank a centred N×D matrix can
  reach; dividing by ``min(N, D)`` would leave a spurious floor, see anchors §3).
* :func:`copy_cos_reference` (cross-encoder, what the reference code logs) versus
  :func:`copy_cos_paper` (paper Eq. 1, target encoder on both sides).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

#: norms below this are treated as zero when dividing (cosines of zero vectors are 0)
_EPS = 1e-12


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def as_numpy(x: Any, dtype=np.float64) -> np.ndarray:
    """``x`` (NumPy array, torch tensor, nested list) as a NumPy array of ``dtype``.

    torch is never imported here: a tensor is recognised by its ``detach`` method.
    """
    if hasattr(x, "detach"):
        x = x.detach()
        if hasattr(x, "float") and str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _matrix(x: Any, name: str = "X") -> np.ndarray:
    arr = as_numpy(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix [N, D], got shape {arr.shape}")
    return arr


def l2_normalize(x: Any) -> np.ndarray:
    """Rows divided by their L2 norm (a zero row stays zero)."""
    arr = _matrix(x)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, _EPS)


def _entropy_exp(weights: np.ndarray) -> float:
    """``exp(−Σ p log p)`` with ``p = weights / Σ weights`` (zero weights contribute 0)."""
    total = float(weights.sum())
    if total <= 0.0:
        return 0.0
    p = weights / total
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def row_cosines(a: Any, b: Any) -> np.ndarray:
    """``cos(a_i, b_i)`` for every row ``i`` (0 where either row is zero)."""
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return (l2_normalize(a) * l2_normalize(b)).sum(axis=1)


# ----------------------------------------------------------------------------------------------
# effective rank and spectrum
# ----------------------------------------------------------------------------------------------
def effective_rank_uncentred(x: Any, *, normalize_rows: bool = False) -> float:
    """Effective rank in the reference's §5 form: ``exp(H(p))``, ``p = s / Σs``.

    ``s`` are the singular values of the **uncentred** matrix ``X`` [N, D] (rows not centred, so a
    common offset counts as one direction). With ``normalize_rows=True`` the rows are first
    L2-normalised, as the reference's full-validation audit does; its batch-128 training probe
    uses raw rows. Ranges from 1 (rank one: every row a multiple of one vector) to ``min(N, D)``;
    an all-zero matrix gives 0.
    """
    arr = l2_normalize(x) if normalize_rows else _matrix(x)
    s = np.linalg.svd(arr, compute_uv=False)
    return _entropy_exp(s)


class CentredRank(NamedTuple):
    """Effective rank of a centred matrix (reference §7 form) and its normalised value."""

    erank: float
    #: ``erank / min(N − 1, D)`` in [0, 1]
    normalised: float


def _centred_spectrum(x: Any) -> tuple[np.ndarray, float]:
    """Squared singular values of the column-centred matrix, zeroed if there is no variance."""
    arr = _matrix(x)
    centred = arr - arr.mean(axis=0, keepdims=True)
    s2 = np.linalg.svd(centred, compute_uv=False) ** 2
    # Rows that are all equal leave only rounding noise after centring: call that no variance.
    scale = float((arr ** 2).sum())
    if float(s2.sum()) <= 1e-18 * max(scale, _EPS):
        s2 = np.zeros_like(s2)
    return s2, scale


def effective_rank_centred(x: Any) -> CentredRank:
    """Effective rank in the reference's §7 (``isotropy_analysis``) form, normalised.

    Centre the columns of ``X`` [N, D], take its singular values ``S``, then
    ``erank = exp(H(S² / ΣS²))`` (entropy of the explained-variance spectrum), and
    ``normalised = erank / min(N − 1, D)``: a centred N×D matrix has rank at most ``N − 1``, so
    this is 1 for perfectly isotropic variance and near 0 for collapse. A set with no variance
    (all rows equal) has ``erank = 0``.
    """
    arr = _matrix(x)
    n, d = arr.shape
    s2, _ = _centred_spectrum(arr)
    erank = _entropy_exp(s2)
    cap = min(n - 1, d)
    return CentredRank(erank, erank / cap if cap > 0 else 0.0)


def top_singular_share(x: Any, *, centred: bool = True) -> float:
    """Share of the largest singular value in the spectrum: ``S₀² / ΣS²`` (reference §7).

    Centred by default, as the reference's ``isotropy_analysis``; 1.0 means one direction carries
    all the variance. A matrix with no variance gives 0.
    """
    if centred:
        s2, _ = _centred_spectrum(x)
    else:
        s2 = np.linalg.svd(_matrix(x), compute_uv=False) ** 2
    total = float(s2.sum())
    return float(s2.max() / total) if total > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# nearest-neighbour discriminability
# ----------------------------------------------------------------------------------------------
def random_baseline(k: int, n: int) -> float:
    """KNN@k of a random ranking over a gallery of ``n`` items: ``min(k, n) / n``."""
    if n <= 0:
        raise ValueError("gallery size must be positive")
    return min(k, n) / n


def knn_ranks(queries: Any, gallery: Any, max_k: int) -> np.ndarray:
    """0-based rank of gallery item ``i`` among query ``i``'s top-``max_k`` cosine neighbours.

    Queries and gallery rows are L2-normalised and searched with ``faiss.IndexFlatIP`` (exact
    inner product, float32). A query whose own item is not in its top ``max_k`` gets rank
    ``max_k``. Ties are ordered as faiss returns them.
    """
    from wmkit.search import nearest

    q_shape, g_shape = tuple(np.shape(queries)), tuple(np.shape(gallery))
    if q_shape != g_shape:
        raise ValueError(f"queries {q_shape} and gallery {g_shape} must pair row for row")
    n = np.shape(gallery)[0]
    _, found = nearest(queries, gallery, max_k)
    hit = found == np.arange(n)[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1), int(max_k))


def nearest_indices(queries: Any, gallery: Any, k: int) -> np.ndarray:
    """Indices ``[Q, k]`` of each query's ``k`` most cosine-similar gallery rows (any gallery size)."""
    from wmkit.search import nearest

    return nearest(queries, gallery, k)[1]


def knn_accuracy(queries: Any, gallery: Any, ks: Sequence[int] = (1, 5, 10, 50)) -> dict[int, float]:
    """KNN@k for each ``k``: fraction of queries ``i`` whose gallery item ``i`` is in the top-k.

    Similarity is cosine; the gallery is all rows of ``gallery`` (reference §5: prediction ẑ_i as
    query, every target z̄_j as gallery). Compare with :func:`random_baseline` ``(k, N)``.
    """
    ks = [int(k) for k in ks]
    ranks = knn_ranks(queries, gallery, max(ks))
    return {k: float((ranks < k).mean()) for k in ks}


# ----------------------------------------------------------------------------------------------
# cosines
# ----------------------------------------------------------------------------------------------
def mean_cos(a: Any, b: Any) -> float:
    """Mean over rows of ``cos(a_i, b_i)`` on raw (not centred) vectors (reference §5 "cos")."""
    return float(row_cosines(a, b).mean())


def delta_cos(pred: Any, target: Any, origin: Any) -> float:
    """Mean ``cos(ẑ − z_on, z̄ − z_on)``: predicted change versus actual change from ``origin``.

    Reference §5: ``origin`` is online(before), ``pred`` the prediction, ``target`` target(after).
    """
    o = _matrix(origin, "origin")
    return mean_cos(_matrix(pred, "pred") - o, _matrix(target, "target") - o)


def copy_cos_reference(online_before: Any, target_after: Any) -> float:
    """Copy baseline as the reference code computes it: mean ``cos(online(before), target(after))``.

    A cross-encoder cosine (reference §5); it drifts below 0 once the online encoder moves away from
    the slow EMA target, which is how a lift above 1 can happen.
    """
    return mean_cos(online_before, target_after)


def copy_cos_paper(target_before: Any, target_after: Any) -> float:
    """Copy baseline as paper Eq. 1 defines it: mean ``cos(target(before), target(after))``."""
    return mean_cos(target_before, target_after)


def lift(cos: float, copy_cos: float) -> float:
    """How much the prediction beats copying the current state: ``cos − copy_cos``."""
    return float(cos) - float(copy_cos)


def cross_cosines(pred: Any, target: Any) -> dict[str, float]:
    """Prediction–target cosine on the diagonal versus off it (reference §5 full-val audit).

    ``diag`` = mean ``cos(ẑ_i, z̄_i)``; ``off`` = mean over ``i ≠ j`` of ``cos(ẑ_i, z̄_j)``;
    ``gap = diag − off`` (the paper's "gap" column). Computed in O(N·D) from row sums.
    """
    p, t = l2_normalize(pred), l2_normalize(target)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} must pair row for row")
    n = p.shape[0]
    diag_sum = float((p * t).sum())
    total = float(p.sum(axis=0) @ t.sum(axis=0))
    diag = diag_sum / n
    off = (total - diag_sum) / (n * (n - 1)) if n > 1 else float("nan")
    return {"diag": diag, "off": off, "gap": diag - off}


def mean_offdiag_self_cos(x: Any) -> float:
    """Mean over ``i ≠ j`` of ``cos(x_i, x_j)``: near 1 when all rows point the same way."""
    u = l2_normalize(x)
    n = u.shape[0]
    if n < 2:
        return float("nan")
    s = u.sum(axis=0)
    return float((s @ s - (u * u).sum()) / (n * (n - 1)))


def std_of_l2_normalized(x: Any) -> float:
    """Collapse monitor: mean over dimensions of the std (over rows) of the L2-normalised rows.

    About ``1/sqrt(D)`` for embeddings spread over the sphere, 0 when every row points the same way
    (population std, ``ddof=0``).
    """
    return float(l2_normalize(x).std(axis=0).mean())


# ----------------------------------------------------------------------------------------------
# geometry (reference §7)
# ----------------------------------------------------------------------------------------------
def signal_ratio(before: Any, after: Any) -> float:
    """Mean over rows of ``‖z_after − z_before‖ / ‖z_before‖`` (reference §7 PROBE 5)."""
    b, a = _matrix(before, "before"), _matrix(after, "after")
    return float((np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), _EPS)).mean())


class ProbeResult(NamedTuple):
    """A held-out linear-probe accuracy and the majority-class baseline of the same test split."""

    accuracy: float
    #: fraction of the test split that belongs to its most frequent class (defect D12)
    majority_baseline: float
    n_train: int
    n_test: int
    n_classes: int


def split_indices(n: int, seed: int, train_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/test split of ``range(n)`` from ``seed`` (the same for every call).

    The reference draws a fresh split per probe call, so two probes on the same tensor differ by
    split noise (reference §7); here one seed gives one split.
    """
    if n < 2:
        raise ValueError(f"a train/test split needs at least 2 rows, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = min(max(int(round(train_fraction * n)), 1), n - 1)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0, keepdims=True)
    std = train.std(axis=0, keepdims=True)
    std = np.where(std > 1e-8, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def linear_probe_accuracy(x: Any, y: Any, seed: int = 0, epochs: int = 200, lr: float = 1e-2) -> ProbeResult:
    """Held-out accuracy of a linear classifier from ``x`` [N, D] to integer labels ``y`` [N].

    Rows with a negative label (missing) are dropped. Fixed 80/20 split from ``seed``
    (:func:`split_indices`); features standardised with the train split's mean and std (a linear
    change of variables: the same model class as the reference, easier to optimise); a
    zero-initialised ``Linear(D, C)`` trained full-batch with Adam(``lr``) on cross-entropy for
    ``epochs`` steps (reference §7 PROBE 1). Returned beside the test split's majority-class rate.
    """
    import torch

    feats = _matrix(x)
    labels = as_numpy(y, dtype=np.int64).reshape(-1)
    if labels.shape[0] != feats.shape[0]:
        raise ValueError(f"{feats.shape[0]} rows but {labels.shape[0]} labels")
    keep = labels >= 0
    feats, labels = feats[keep], labels[keep]
    if feats.shape[0] < 5:
        raise ValueError(f"a linear probe needs at least 5 labelled rows, got {feats.shape[0]}")
    classes, labels = np.unique(labels, return_inverse=True)
    train, test = split_indices(feats.shape[0], seed)
    xtr, xte = _standardise(feats[train], feats[test])
    ytr, yte = labels[train], labels[test]

    xtr_t = torch.as_tensor(xtr, dtype=torch.float32)
    ytr_t = torch.as_tensor(ytr, dtype=torch.long)
    weight = torch.zeros(feats.shape[1], len(classes), requires_grad=True)
    bias = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few-KB problem: thread hand-offs would cost more than the maths
    try:
        with torch.enable_grad():
            for _ in range(int(epochs)):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(xtr_t @ weight + bias, ytr_t)
                loss.backward()
                opt.step()
        with torch.no_grad():
            logits = torch.as_tensor(xte, dtype=torch.float32) @ weight + bias
            pred = logits.argmax(dim=1).numpy()
    finally:
        torch.set_num_threads(threads)
    accuracy = float((pred == yte).mean())
    majority = float(np.bincount(yte, minlength=len(classes)).max() / len(yte))
    return ProbeResult(accuracy, majority, int(len(train)), int(len(test)), int(len(classes)))


def linear_delta_probe(x: Any, y: Any, seed: int = 0, ridge: float = 1e-3) -> float:
    """Held-out mean cosine of a linear regressor from ``x`` [N, D] to targets ``y`` [N, E].

    Reference §7 PROBE 2 (loop-ℓ before-embedding → final online delta). Fitted in closed form
    (least squares with a bias and a small ridge, ``ridge · mean(diag(XᵀX))``) on the fixed 80% of
    :func:`split_indices`, scored as mean ``cos(ŷ_i, y_i)`` on the other 20%: the ceiling of what a
    linear map can predict.
    """
    feats, target = _matrix(x, "x"), _matrix(y, "y")
    if feats.shape[0] != target.shape[0]:
        raise ValueError(f"{feats.shape[0]} rows in x but {target.shape[0]} in y")
    train, test = split_indices(feats.shape[0], seed)
    design = np.hstack([feats, np.ones((feats.shape[0], 1))])
    a = design[train]
    gram = a.T @ a
    reg = ridge * float(np.trace(gram)) / gram.shape[0]
    penalty = np.eye(gram.shape[0]) * reg
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    coef = np.linalg.solve(gram + penalty, a.T @ target[train])
    return mean_cos(design[test] @ coef, target[test])


def _trajectory_pairs(trajectory: Any) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(j − 1, j)`` of consecutive rows that share a trajectory id.

    Rows must already be in trajectory order (successive edits of one file are adjacent rows);
    a negative id means "no trajectory".
    """
    ids = as_numpy(trajectory, dtype=np.int64).reshape(-1)
    if ids.size < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    same = (ids[1:] == ids[:-1]) & (ids[1:] >= 0)
    cur = np.nonzero(same)[0] + 1
    return cur - 1, cur


def consecutive_delta_cos(deltas: Any, trajectory: Any) -> float:
    """Mean ``cos(δ_j, δ_{j−1})`` over successive edits of the same trajectory (reference §7).

    ``deltas`` [N, D] holds one edit per row (``z_after − z_before``, i.e. ``δ_j = z_{j+1} − z_j``
    for a chained trajectory); ``trajectory`` [N] groups rows, which must be in order. NaN when no
    trajectory has two edits.
    """
    d = _matrix(deltas, "deltas")
    prev, cur = _trajectory_pairs(trajectory)
    if prev.size == 0:
        return float("nan")
    return mean_cos(d[cur], d[prev])


def straightness(deltas: Any, trajectory: Any) -> float:
    """Fraction of successive edits with curvature ``κ_j = ‖δ_j − δ_{j−1}‖ / ‖δ_{j−1}‖ < 1``.

    Reference §7 (``curvature_analysis``, score 0.132 on its 6-loop model). Same inputs as
    :func:`consecutive_delta_cos`; NaN when no trajectory has two edits.
    """
    d = _matrix(deltas, "deltas")
    prev, cur = _trajectory_pairs(trajectory)
    if prev.size == 0:
        return float("nan")
    kappa = np.linalg.norm(d[cur] - d[prev], axis=1) / np.maximum(np.linalg.norm(d[prev], axis=1), _EPS)
    return float((kappa < 1.0).mean())


def trajectory_pair_count(trajectory: Any) -> int:
    """How many (δ_{j−1}, δ_j) pairs :func:`straightness` averages over."""
    return int(_trajectory_pairs(trajectory)[0].size)


def loop_straightness(loops: Sequence[Any]) -> list[float]:
    """Straightness of the path an embedding takes through the encoder loops.

    For each interior loop ℓ (1 ≤ ℓ ≤ L − 2, 0-based), the mean over rows of
    ``cos(z_{ℓ+1} − z_ℓ, z_ℓ − z_{ℓ−1})`` (reference §7, the cross-seed "straightness" [I]); a
    3-loop encoder gives one value. Fewer than 3 loops give an empty list.
    """
    zs = [_matrix(z, f"loop {i}") for i, z in enumerate(loops)]
    return [mean_cos(zs[i + 1] - zs[i], zs[i] - zs[i - 1]) for i in range(1, len(zs) - 1)]


# ----------------------------------------------------------------------------------------------
# retrieval (reference §6)
# ----------------------------------------------------------------------------------------------
Relevance = Any  # bool matrix [Q, G] or callable (query index, gallery index) -> bool


def relevance_hits(ranking: Any, relevant: Relevance, depth: int = 10) -> np.ndarray:
    """Bool [Q, depth]: whether the item at each of the first ``depth`` ranks is relevant.

    ``ranking`` [Q, ≥depth] holds gallery indices best first (−1 = empty slot, never relevant);
    ``relevant`` is a bool matrix [Q, G] or a predicate ``relevant(q, g) -> bool``.
    """
    rank = as_numpy(ranking, dtype=np.int64)
    if rank.ndim != 2:
        raise ValueError(f"ranking must be [Q, K], got shape {rank.shape}")
    rank = rank[:, :depth]
    if callable(relevant):
        hits = np.array([[g >= 0 and bool(relevant(q, int(g))) for g in row] for q, row in enumerate(rank)],
                        dtype=bool).reshape(rank.shape)
    else:
        rel = np.asarray(relevant, dtype=bool)
        if rel.shape[0] != rank.shape[0]:
            raise ValueError(f"relevance has {rel.shape[0]} rows for {rank.shape[0]} queries")
        safe = np.where(rank >= 0, rank, 0)
        hits = np.take_along_axis(rel, safe, axis=1) & (rank >= 0)
    return hits


def mrr_at_10(ranking: Any, relevant: Relevance) -> float:
    """Mean over queries of ``1 / rank`` of the first relevant item in the top 10, 0 if none.

    Reference §6 ("MRR", effectively MRR@10); ranks are 1-based.
    """
    hits = relevance_hits(ranking, relevant, depth=10)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    return float(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0).mean())


def recall_at_k(ranking: Any, relevant: Relevance, k: int) -> float:
    """Fraction of queries with at least one relevant item in the top ``k`` (reference §6 R@k)."""
    hits = relevance_hits(ranking, relevant, depth=k)
    return float(hits.any(axis=1).mean())


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
