"""Held-out linear probes of embeddings: a classifier (trained with torch) and a closed-form regressor.

Unlike the rest of :mod:`wmkit.metrics` these fit a model, on a fixed train/test split of the rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from wmkit.metrics.arrays import _matrix, as_numpy
from wmkit.metrics.cosines import mean_cos


class ProbeResult(NamedTuple):
    """A held-out linear-probe accuracy and the majority-class baseline of the same test split."""

    accuracy: float
    #: fraction of the test split that belongs to its most frequent class (defect D12, docs/reference.md#d12)
    majority_baseline: float
    n_train: int
    n_test: int
    n_classes: int


def split_indices(n: int, seed: int, train_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/test split of ``range(n)`` from ``seed`` (the same for every call).

    The reference draws a fresh split per probe call, so two probes on the same tensor differ by
    split noise (reference §7, docs/reference.md#s7); here one seed gives one split.
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
    ``epochs`` steps (reference §7 (docs/reference.md#s7) PROBE 1). Returned beside the test split's
    majority-class rate.
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

    Reference §7 (docs/reference.md#s7) PROBE 2 (loop-ℓ before-embedding → final online delta). Fitted in
    closed form (least squares with a bias and a small ridge, ``ridge · mean(diag(XᵀX))``) on the fixed 80% of
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
