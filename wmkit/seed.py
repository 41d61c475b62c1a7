"""One seeding function, called before anything random is constructed
(reference defect D3, docs/reference.md#d3)."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) with ``seed``.

    Call it before building the model, the optimizer or any data sampler: the reference applied
    its seed after construction, so initial weights came from the default RNG state.
    ``deterministic=True`` also asks torch for deterministic kernels (set before CUDA starts).
    """
    import numpy as np
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)  # for child processes; ours is already running
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
