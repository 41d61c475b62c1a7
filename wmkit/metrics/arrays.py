"""Array plumbing shared by the metrics: any array-like as float64 NumPy, row normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np

#: norms below this are treated as zero when dividing (cosines of zero vectors are 0)
_EPS = 1e-12


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
