"""A closed-form start for an action encoder that is linear in edit features.

Before step 1, ridge regression (:func:`wmkit.linear_edit.fit_linear_edit`) is fit from the encoder's
:meth:`~wmkit.components.ActionEncoder.linear_features` of training pairs to the initial target's
target(after) − target(before), and the encoder takes those weights. With a predictor whose update
is the action embedding at step 0 and predictions from target(before) at gain 1, the untrained model
*is* the audit's linear edit baseline, and training can only earn its keep by improving on it.
Training pairs only; the sample is fixed by the run's seed.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from wmkit.components import ActionInputs
from wmkit.encode import ENCODE_CHUNK, chunks, encode_states
from wmkit.errors import RecipeError
from wmkit.linear_edit import fit_linear_edit

#: the untrained model must reproduce the ridge prediction this closely (cosine)
AGREEMENT = 1e-4


def _inputs(data, rows: np.ndarray, device) -> ActionInputs:
    before, after, actions = (torch.from_numpy(np.asarray(a[rows])).to(device)
                              for a in (data.before, data.after, data.actions))
    return ActionInputs(vector=actions.float(), before=before.long(), after=after.long())


@torch.inference_mode()
def warm_start_action_encoder(model, data, train_rows: np.ndarray, *, seed: int, device) -> dict:
    """Fit the action encoder's linear part on a sample of ``train_rows``; returns what was fit."""
    encoder = model.action_encoder
    t0 = time.perf_counter()
    n = min(int(encoder.warm_start_pairs), len(train_rows))
    if not model.starts_from_target:
        raise RecipeError("model.action: a warm start from the linear edit model needs predictions from the "
                          "copy baseline; set model.predictor.start = \"target_before\"")
    rows = np.sort(np.random.default_rng(seed).choice(train_rows, size=n, replace=False))
    was_training = model.training
    # encode_states runs the model in eval mode: no dropout in the encodings the fit reads
    y = (encode_states(model, data.after[rows], target=True).astype(np.float64)
         - encode_states(model, data.before[rows], target=True).astype(np.float64))
    x = np.concatenate([encoder.linear_features(_inputs(data, rows[s], device)).double().cpu().numpy()
                        for s in chunks(len(rows), ENCODE_CHUNK)])
    fit = fit_linear_edit(x, np.zeros_like(y), y)
    weights = torch.from_numpy(fit["weights"]).float().to(device)
    bias = torch.from_numpy(fit["bias"]).float().to(device)
    encoder.set_linear(weights, bias)
    model.residual_gain.fill_(1.0)
    # the untrained model must now be the linear edit model; otherwise the predictor does not pass the
    # action embedding through as its update at step 0
    inputs = _inputs(data, rows[:64], device)
    emb = model.embed(inputs.before, inputs.after, inputs.vector)
    model.train(was_training)
    linear = emb.target_before + encoder.linear_features(inputs) @ weights + bias
    agreement = float(torch.nn.functional.cosine_similarity(emb.pred.float(), linear, dim=-1).min())
    if agreement < 1 - AGREEMENT:
        raise RecipeError("model.action: after the warm start the untrained model does not predict "
                          f"target(before) + the linear edit model (min cos {agreement:.4f}); the predictor must "
                          "pass the action embedding through as its update at step 0: set "
                          "model.predictor.output = \"update\", add_action = true and zero_init = true")
    return {"pairs": int(n), "features": int(x.shape[1]), "alpha": fit["alpha"], "inner_mse": fit["inner_mse"],
            "seconds": round(time.perf_counter() - t0, 2)}
