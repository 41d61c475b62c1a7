"""The loss terms of the CodeWM 2 objective, one public function each (reference §4, docs/reference.md#s4).

Every function takes ``[N, D]`` tensors and returns a scalar tensor with gradient. The
composition (weights, stop-gradients, which embeddings go where) lives in
:meth:`wmkit.model.WorldModel.forward`.

Notation: ẑ the prediction, z_t the online embedding of the before state (detached where it
enters the predictor), z̄ the EMA target's embedding of the after state. A "delta" is a
displacement from the before state: d̂ = ẑ − z_t (predicted) and d = z̄ − z_t (target).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: norms are clamped to at least this before dividing or taking a log (the reference's 1e-6)
NORM_EPS = 1e-6


def normalized_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-mean MSE between L2-normalised rows: mean_n (2 − 2 cos(a_n, b_n)) / D."""
    return F.mse_loss(F.normalize(a, dim=-1), F.normalize(b, dim=-1))


def pred_projector_mse(pred: torch.Tensor, target: torch.Tensor, pred_projector: nn.Module | None = None,
                       target_projector: nn.Module | None = None) -> torch.Tensor:
    """L_pred as the reference computes it (its default, ``WM_USE_PROJECTOR=1``;
    reference §4, docs/reference.md#s4):

    element-mean MSE between normalize(proj_p(ẑ)) and normalize(proj_t(z̄)), i.e. (2 − 2cos)/D in
    projector space — not the paper's 1 − cos (defect D9, docs/reference.md#d9). Without projectors (``None``)
    the same MSE is taken on ẑ and z̄ directly, as the reference does with ``WM_USE_PROJECTOR=0``.
    """
    if pred_projector is not None:
        pred = pred_projector(pred)
    if target_projector is not None:
        target = target_projector(target)
    return normalized_mse(pred, target)


def pred_cosine(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_pred as the paper writes it: 1 − mean_n cos(ẑ_n, z̄_n) on the raw embeddings."""
    return 1.0 - F.cosine_similarity(pred, target, dim=-1, eps=NORM_EPS).mean()


def delta_mse(pred_delta: torch.Tensor, target_delta: torch.Tensor) -> torch.Tensor:
    """Direct delta prediction (paper §"Negative results"): element-mean MSE between d̂ and d.

    The reference's first version used LogCosh here; its "fair-loss fix" normalised the deltas
    (see :func:`delta_cosine`).
    """
    return F.mse_loss(pred_delta, target_delta)


def delta_cosine(pred_delta: torch.Tensor, target_delta: torch.Tensor) -> torch.Tensor:
    """The normalised delta loss: 1 − mean_n cos(d̂_n, d_n).

    The reference took the MSE of the normalised deltas, (2 − 2cos)/D: the same loss scaled by 2/D.
    """
    return direction_loss(pred_delta, target_delta)


def direction_loss(pred_delta: torch.Tensor, target_delta: torch.Tensor) -> torch.Tensor:
    """L_dir = 1 − mean_n cos(d̂_n, d_n), norms clamped at :data:`NORM_EPS`
    (reference §4, docs/reference.md#s4)."""
    pred_unit = pred_delta / pred_delta.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
    target_unit = target_delta / target_delta.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
    return 1.0 - (pred_unit * target_unit).sum(dim=-1).mean()


def magnitude_loss(pred_delta: torch.Tensor, target_delta: torch.Tensor) -> torch.Tensor:
    """L_mag = mean_n (log(‖d̂_n‖ + ε) − log(‖d_n‖ + ε))² with ε = 1e-6 (reference §4, docs/reference.md#s4).

    ε (also the clamp floor of each norm, as in the reference) keeps the log finite when a
    delta is zero, e.g. when before == after.
    """
    pred_norm = pred_delta.norm(dim=-1).clamp_min(NORM_EPS)
    target_norm = target_delta.norm(dim=-1).clamp_min(NORM_EPS)
    return (torch.log(pred_norm + NORM_EPS) - torch.log(target_norm + NORM_EPS)).pow(2).mean()


def covariance_matrix(z: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance ``[D, D]`` of the rows of ``z`` (divides by N − 1, at least 1)."""
    centred = z - z.mean(dim=0, keepdim=True)
    return centred.T @ centred / max(z.shape[0] - 1, 1)


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """L_cov = Σ_{i≠j} C_ij² / D with C the unbiased covariance of ``z``
    (reference §4, docs/reference.md#s4)."""
    cov = covariance_matrix(z)
    off_diagonal = cov - torch.diag_embed(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / z.shape[1]


def variance_hinge(z: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """mean_d relu(1 − std_d(z)) with the unbiased std (the reference's VICReg variance term).

    The reference takes ``std`` directly (no ε). VICReg (Bardes et al.) uses sqrt(var + ε) with
    ε = 1e-4, which keeps the gradient finite when a dimension has collapsed; ``eps > 0`` gives that.
    """
    var = z.var(dim=0)
    std = torch.sqrt(var + eps) if eps > 0 else var.sqrt()
    return F.relu(1.0 - std).mean()
