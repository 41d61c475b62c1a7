"""A closed-form start for an action encoder that is linear in edit features.

Before step 1, ridge regression (:func:`wmkit.linear_edit.fit_linear_edit`) is fit from the encoder's
:meth:`~wmkit.components.ActionEncoder.linear_features` of training pairs to the initial target's
target(after) − target(before), and the encoder takes those weights. With a predictor whose update
is the action embedding at step 0 and predictions from target(before) at gain 1, the untrained model
*is* the audit's linear edit baseline, and training can only earn its keep by improving on it.

An encoder with a nonlinear part (:meth:`~wmkit.components.ActionEncoder.residual_parameters`, silent
until now) then gets ``warm_start_steps`` AdamW steps fitting it, by its ``residual_loss`` (mean squared
error unless the encoder says otherwise), to what ridge left of the same pairs' change: the untrained
model is then the linear edit model plus that fit.
Those steps may also read each pair's revert and synthetic block moves of training states, encoded by
the same initial target (:func:`block_moves`). Training pairs only; the sample, the moves and the
batches are fixed by the run's seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from wmkit.components import ActionInputs
from wmkit.encode import ENCODE_CHUNK, chunks, encode_states
from wmkit.errors import RecipeError
from wmkit.linear_edit import fit_linear_edit

#: the untrained model must reproduce the warm-started prediction this closely (cosine)
AGREEMENT = 1e-4
#: pairs per AdamW step of the residual fit, and its weight decay
RESIDUAL_BATCH = 256
RESIDUAL_WEIGHT_DECAY = 0.01
#: anchored block moves per training pair the order fit reads besides the pairs' own reorderings
ORDER_MOVES = 2
#: the order fit's ridge penalty, on sums over ~30K pairs (between the 1 and 10 of exploratory fits, which
#: moved reorderings alike; docs/results.md)
ORDER_ALPHA = 3.0
#: rows of order features multiplied into the Gram matrix at a time
ORDER_GRAM_ROWS = 4096


@dataclass
class _Pairs:
    """The token windows (and action vectors) of the pairs a residual fit reads, row-aligned."""

    before: np.ndarray
    after: np.ndarray
    actions: np.ndarray

    @classmethod
    def of(cls, data, rows: np.ndarray) -> "_Pairs":
        return cls(*(np.asarray(a[rows]) for a in (data.before, data.after, data.actions)))

    def __len__(self) -> int:
        return len(self.before)

    def __add__(self, other: "_Pairs") -> "_Pairs":
        return _Pairs(*(np.concatenate([a, b]) for a, b in zip(
            (self.before, self.after, self.actions), (other.before, other.after, other.actions))))

    def reverted(self) -> "_Pairs":
        """Each pair read after -> before (the action vector is the pair's own: a warm start fits no part
        of the embedding that reads it)."""
        return _Pairs(self.after, self.before, self.actions)

    def inputs(self, idx, device, state: torch.Tensor | None = None) -> ActionInputs:
        before, after, actions = (torch.from_numpy(a[idx]).to(device) for a in (self.before, self.after, self.actions))
        return ActionInputs(vector=actions.float(), before=before.long(), after=after.long(), state=state)


def _inputs(data, rows: np.ndarray, device, state: torch.Tensor | None = None) -> ActionInputs:
    """The action inputs of ``rows`` of ``data``."""
    return _Pairs.of(data, rows).inputs(slice(None), device, state)


def block_moves(tokens: np.ndarray, pad_id: int, rng: np.random.Generator) -> np.ndarray:
    """Each window of ``tokens`` ``[N, L]`` with one block of its tokens moved elsewhere: a span of 2 to
    a third of its non-pad tokens, cut out and put back at another place, pads kept where they were.

    The same tokens in another order, which a bag of removed and added tokens cannot see (a reordering
    of statements, or its revert). A window of fewer than 4 tokens is returned as it is.
    """
    out = np.array(tokens, copy=True)
    for row in out:
        where = np.flatnonzero(row != pad_id)
        n = len(where)
        if n < 4:
            continue
        m = int(rng.integers(2, max(2, n // 3) + 1))
        i = int(rng.integers(0, n - m + 1))
        k = int(rng.integers(0, n - m))  # any place but its own: a cut at i put back at i is no move
        k += k >= i
        row[where] = _move_block(row[where], i, m, k)
    return out


def _move_block(seq: np.ndarray, i: int, m: int, k: int) -> np.ndarray:
    """``seq`` with its tokens ``i .. i+m-1`` cut out and put back before the k-th of the rest."""
    rest = np.concatenate([seq[:i], seq[i + m:]])
    return np.concatenate([rest[:k], seq[i:i + m], rest[k:]])


def anchored_moves(before: np.ndarray, after: np.ndarray, pad_id: int, rng: np.random.Generator) -> np.ndarray:
    """Each pair's before ``[N, L]`` with one block of 2 to a quarter of its non-pad tokens moved, so that the
    first changed position is the pair's own first edit: cut there and put back later, or cut later and
    put in there. Real reorderings begin where the edit window is centred, which :func:`block_moves`
    ignores. A pair with no edit, fewer than 8 tokens or no room for the block is returned as it is."""
    out = np.array(before, copy=True)
    for row, b, a in zip(out, before, after):
        where = np.flatnonzero(row != pad_id)
        edited = np.flatnonzero(b != a)
        n = len(where)
        if n < 8 or not len(edited):
            continue
        first = int(np.searchsorted(where, edited[0]))
        m = int(rng.integers(2, max(3, n // 4)))
        if first + m >= n:
            continue
        if rng.random() < 0.5:  # cut at the first edit, put back later
            i, k = first, int(rng.integers(first + 1, n - m + 1))
        else:  # cut later, put in at the first edit
            i, k = int(rng.integers(first + 1, n - m + 1)), first
        row[where] = _move_block(row[where], i, m, k)
    return out


def fit_order(encoder, data, rows: np.ndarray, state: np.ndarray, change: np.ndarray, *, seed: int, device,
              encode: Callable[[np.ndarray], np.ndarray] | None) -> dict | None:
    """Ridge (no bias, penalty :data:`ORDER_ALPHA`) from
    :meth:`~wmkit.components.ActionEncoder.order_features` to what the linear part leaves of the change, on
    the training pairs ``rows`` whose order features are not zero and on :data:`ORDER_MOVES` anchored block
    moves per pair (:func:`anchored_moves`) encoded by the initial target; None for an encoder without
    order features. The features are wide (buckets × 2 × frequencies) and mostly zero: with more rows than
    features the Gram matrix is summed chunk by chunk, with fewer the dual form is solved (``"solve"`` in
    the returned dict says which)."""
    probe = encoder.order_features(_inputs(data, rows[:1], device))
    if probe is None:
        return None
    if encode is None:
        raise RecipeError("model.action: the order fit reads synthetic block moves; pass encode= to the warm start")
    t0 = time.perf_counter()
    pairs = _Pairs.of(data, rows)
    src = np.repeat(np.arange(len(pairs)), ORDER_MOVES)
    moved = anchored_moves(pairs.before[src], pairs.after[src], encoder.pad_id, np.random.default_rng([seed, 3]))
    keep = np.flatnonzero((moved != pairs.before[src]).any(axis=1))
    src, moved = src[keep], moved[keep]
    moves = _Pairs(pairs.before[src], moved, pairs.actions[src])
    moves_change = np.asarray(encode(moved), dtype=np.float64) - state[src]
    width = probe.shape[1]
    # rows are kept until there are more of them than features; then (the usual case at full scale) they
    # are summed into the Gram matrix, else (small data) the same ridge is solved in its dual form
    # Xᵀ(XXᵀ + αI)⁻¹Y, which at a few hundred rows is a small solve instead of one of 21,888 features
    gram: list[torch.Tensor] = []  # [xx float32: 1.9 GB, not 3.8, at 21,888 features; xy float64]
    rows_x: list[torch.Tensor] = []
    rows_y: list[torch.Tensor] = []
    counted = {"pairs": 0, "moves": 0}

    def flush():
        if not gram:
            gram.extend([torch.zeros(width, width, device=device),
                         torch.zeros(width, change.shape[1], dtype=torch.float64, device=device)])
        while rows_x:  # about ORDER_GRAM_ROWS rows per product: large enough to run at matmul speed
            take = 1
            while take < len(rows_x) and sum(len(b) for b in rows_x[:take]) < ORDER_GRAM_ROWS:
                take += 1
            x, y = torch.cat(rows_x[:take]), torch.cat(rows_y[:take])
            del rows_x[:take], rows_y[:take]
            gram[0].addmm_(x.T, x)
            gram[1].addmm_(x.T.double(), y)

    for name, these, these_state, these_change in (("pairs", pairs, state, change),
                                                   ("moves", moves, state[src], moves_change)):
        for s in chunks(len(these), ENCODE_CHUNK):
            idx = np.arange(s.start, s.stop)
            inputs = these.inputs(idx, device, torch.from_numpy(these_state[s]).float().to(device))
            with torch.no_grad():
                x = encoder.order_features(inputs)
                seen = x.abs().sum(dim=1) > 0
                if not bool(seen.any()):
                    continue
                # what the embedding fit so far (the linear part; the rest is silent) leaves of the change
                left = torch.from_numpy(these_change[s]).to(device) - encoder(inputs).double()
            rows_x.append(x[seen])
            rows_y.append(left[seen])
            counted[name] += int(seen.sum())
            kept = sum(len(b) for b in rows_x)
            if (gram and kept >= ORDER_GRAM_ROWS) or (not gram and counted["pairs"] + counted["moves"] > width):
                flush()
    if not counted["pairs"] + counted["moves"]:
        raise RecipeError("model.action.order_frequencies: no training pair or synthetic move reorders tokens; "
                          "set order_frequencies = 0")
    if gram:
        flush()
        xx, xy = gram[0].double(), gram[1]
        xx.diagonal().add_(ORDER_ALPHA)
        weights, solve = torch.linalg.solve(xx, xy), "gram"
    else:
        x, y = torch.cat(rows_x).double(), torch.cat(rows_y)
        kernel = x @ x.T
        kernel.diagonal().add_(ORDER_ALPHA)
        weights, solve = x.T @ torch.linalg.solve(kernel, y), "dual"
    encoder.set_order(weights.float())
    return {**counted, "features": width, "alpha": ORDER_ALPHA, "solve": solve,
            "seconds": round(time.perf_counter() - t0, 2)}


def _moves(encoder, pairs: _Pairs, state: torch.Tensor, encode, seed: int, device) -> tuple[_Pairs, torch.Tensor,
                                                                                         torch.Tensor]:
    """``warm_start_moves`` × len(pairs) synthetic pairs: a training pair's before with a block moved, its
    target(before) as state and the initial target's change ``encode(moved) − state`` (moves that
    changed nothing dropped)."""
    rng = np.random.default_rng([seed, 2])
    count = int(round(encoder.warm_start_moves * len(pairs)))
    src = np.sort(rng.choice(len(pairs), size=count, replace=count > len(pairs)))
    moved = block_moves(pairs.before[src], encoder.pad_id, rng)
    keep = np.flatnonzero((moved != pairs.before[src]).any(axis=1))
    src, moved = src[keep], moved[keep]
    after = torch.from_numpy(np.asarray(encode(moved), dtype=np.float32)).to(device)
    return _Pairs(pairs.before[src], moved, pairs.actions[src]), state[src], after - state[src]


def nearest_gaps(after: torch.Tensor, states: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """``[N]``: per row of ``after``, the squared distance to the nearest row of ``states`` that is not the
    same point (closer than 1e-7 of the mean squared norm: itself, or a token-identical state, which
    retrieval counts as found). float64, so a change of cos 0.99999 is not lost to rounding."""
    after64, states64 = after.double(), states.double()
    norms = states64.pow(2).sum(dim=1)
    same = 1e-7 * float(norms.mean())
    out = []
    for s in chunks(len(after64), chunk):
        a = after64[s]
        d2 = (a.pow(2).sum(dim=1, keepdim=True) + norms - 2 * a @ states64.T).clamp(min=0)
        out.append(d2.masked_fill(d2 <= same, math.inf).min(dim=1).values)
    return torch.cat(out).float()


def fit_residual(encoder, data, rows: np.ndarray, state: torch.Tensor, change: torch.Tensor, *, seed: int, device,
                 encode: Callable[[np.ndarray], np.ndarray] | None = None,
                 report: Callable[[int], None] | None = None, report_every: int = 0) -> dict:
    """``warm_start_steps`` AdamW steps of ``residual_loss`` (its error to the change) on ``residual_parameters``
    only, for the pairs ``rows`` whose target(before) is ``state`` and target(after) − target(before) is
    ``change``; with ``warm_start_moves``, also for synthetic block moves of those pairs' before states,
    whose target(after) is ``encode(tokens)`` (the initial target); and, with ``warm_start_reverts``, for
    the reverts of all of them (from state + change, by −change). ``report(step)`` is called every
    ``report_every`` steps (the frozen-target bench reads the fit as it goes)."""
    params = encoder.residual_parameters()
    if not params:
        raise RecipeError("model.action: this action encoder has no nonlinear part to fit after the ridge "
                          "warm start; set its warm-start steps to 0")
    pairs = _Pairs.of(data, rows)
    out = {"steps": int(encoder.warm_start_steps), "lr": float(encoder.warm_start_lr), "pairs": len(pairs)}
    gallery = [state, state + change]  # every state of the fit: the pairs' befores and afters, then the moves'
    if encoder.warm_start_moves:
        if encode is None:
            raise RecipeError("model.action: synthetic block moves need the initial target to encode them; "
                              "pass encode= to the warm start")
        t0 = time.perf_counter()
        moves, move_state, move_change = _moves(encoder, pairs, state, encode, seed, device)
        pairs, state, change = pairs + moves, torch.cat([state, move_state]), torch.cat([change, move_change])
        gallery.append(move_state + move_change)
        out["moves"] = {"pairs": len(moves), "seconds": round(time.perf_counter() - t0, 2)}
    if encoder.warm_start_reverts:
        pairs, state = pairs + pairs.reverted(), torch.cat([state, state + change])
        change = torch.cat([change, -change])
    out["fit_pairs"] = len(pairs)
    gap = None
    if encoder.warm_start_gaps:
        gap = nearest_gaps(state + change, torch.cat(gallery))
        alone = ~torch.isfinite(gap)  # no other state at all: as easy to find as the easiest pair
        gap[alone] = gap[~alone].max() if bool((~alone).any()) else 1.0
    trainable = [p.requires_grad for p in encoder.parameters()]
    for p in encoder.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=encoder.warm_start_lr, weight_decay=RESIDUAL_WEIGHT_DECAY)
    # cosine to 0: the fit ends on a settled iterate rather than wherever the last noisy step left it
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, encoder.warm_start_steps)
                                                    / encoder.warm_start_steps)))
    batches = np.random.default_rng([seed, 1])
    batch = min(RESIDUAL_BATCH, len(pairs))
    for step in range(1, encoder.warm_start_steps + 1):
        pick = np.sort(batches.choice(len(pairs), size=batch, replace=False))
        loss = encoder.residual_loss(pairs.inputs(pick, device, state[pick]), change[pick],
                                     None if gap is None else gap[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if report is not None and report_every and step % report_every == 0:
            report(step)
    for p, flag in zip(encoder.parameters(), trainable):
        p.requires_grad_(flag)
    return out


def embed_rows(encoder, data, rows: np.ndarray, state: torch.Tensor, device) -> torch.Tensor:
    """The action embeddings of ``rows`` of ``data`` applied to ``state`` (their target(before)), chunked."""
    with torch.inference_mode():
        return torch.cat([encoder(_inputs(data, rows[s], device, state[s])) for s in chunks(len(rows), ENCODE_CHUNK)])


def fit_action_encoder(encoder, data, rows: np.ndarray, target_before: np.ndarray, target_after: np.ndarray, *,
                       seed: int, device, encode: Callable[[np.ndarray], np.ndarray] | None = None,
                       report: Callable[[int], None] | None = None, report_every: int = 0) -> dict:
    """Fit ``encoder`` so that its embedding of ``rows`` is target(after) − target(before): ridge on its
    linear features, then its nonlinear part (``warm_start_steps``; ``encode`` maps token windows to the
    same target's embeddings, for synthetic moves); returns what was fit."""
    y = np.asarray(target_after, dtype=np.float64) - target_before
    with torch.inference_mode():
        x = np.concatenate([encoder.linear_features(_inputs(data, rows[s], device)).double().cpu().numpy()
                            for s in chunks(len(rows), ENCODE_CHUNK)])
    fit = fit_linear_edit(x, np.zeros_like(y), y)
    residual_rms = float(np.sqrt(np.mean((x @ fit["weights"] + fit["bias"] - y) ** 2)))
    encoder.set_linear(torch.from_numpy(fit["weights"]).float().to(device),
                       torch.from_numpy(fit["bias"]).float().to(device), residual_rms=residual_rms)
    out = {"pairs": int(len(rows)), "features": int(x.shape[1]), "alpha": fit["alpha"],
           "inner_mse": fit["inner_mse"], "fit_mse": residual_rms ** 2}
    del x  # wide with position_bins; the order fit next needs the memory
    order = fit_order(encoder, data, rows, np.asarray(target_before, dtype=np.float64), y, seed=seed,
                      device=device, encode=encode)
    if order is not None:
        out["order"] = order
    if encoder.warm_start_steps:
        state, change = (torch.from_numpy(np.asarray(a)).float().to(device) for a in (target_before, y))
        out["residual"] = fit_residual(encoder, data, rows, state, change, seed=seed, device=device, encode=encode,
                                       report=report, report_every=report_every)
        out["residual"]["fit_mse"] = float(((embed_rows(encoder, data, rows, state, device) - change) ** 2).mean())
    return out


def warm_start_action_encoder(model, data, train_rows: np.ndarray, *, seed: int, device) -> dict:
    """Fit the action encoder on a sample of ``train_rows`` to the initial target's change (ridge, then
    its nonlinear part if it has warm-start steps); returns what was fit."""
    encoder = model.action_encoder
    t0 = time.perf_counter()
    n = min(int(encoder.warm_start_pairs), len(train_rows))
    if not model.starts_from_target:
        raise RecipeError("model.action: a warm start from the linear edit model needs predictions from the "
                          "copy baseline; set model.predictor.start = \"target_before\"")
    rows = np.sort(np.random.default_rng(seed).choice(train_rows, size=n, replace=False))
    was_training = model.training
    # encode_states runs the model in eval mode: no dropout in the encodings the fit reads
    target_before = encode_states(model, data.before[rows], target=True).astype(np.float64)
    target_after = encode_states(model, data.after[rows], target=True).astype(np.float64)
    out = fit_action_encoder(encoder, data, rows, target_before, target_after, seed=seed, device=device,
                             encode=lambda tokens: encode_states(model, tokens, target=True))
    with torch.no_grad():
        model.residual_gain.fill_(1.0)
    # the untrained model must now predict target(before) + the action embedding; otherwise the predictor
    # does not pass the action embedding through as its update at step 0
    with torch.inference_mode():
        inputs = _inputs(data, rows[:64], device)
        emb = model.embed(inputs.before, inputs.after, inputs.vector)
        model.train(was_training)
        expected = emb.target_before + emb.action_embedding
        agreement = float(torch.nn.functional.cosine_similarity(emb.pred.float(), expected, dim=-1).min())
    if agreement < 1 - AGREEMENT:
        raise RecipeError("model.action: after the warm start the untrained model does not predict "
                          f"target(before) + the action embedding (min cos {agreement:.4f}); the predictor must "
                          "pass the action embedding through as its update at step 0: set "
                          "model.predictor.output = \"update\", add_action = true and zero_init = true")
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def describe(fit: dict) -> str:
    """One line for the training log: each stage of the fit ``warm_start_action_encoder`` returned, with
    the numbers config.json keeps under ``warm_start``."""
    parts = [f"ridge penalty {fit['alpha']:g} on {fit['features']} count features"]
    order = fit.get("order")
    if order:
        parts.append(f"reordering expert on {order['pairs']} reorderings + {order['moves']} synthetic moves "
                     f"({order['features']} features, penalty {order['alpha']:g}, {order['solve']} solve, "
                     f"{order['seconds']:.0f}s)")
    residual = fit.get("residual")
    if residual:
        parts.append(f"{residual['steps']} steps of the nonlinear part: fit MSE {fit['fit_mse']:.3g} -> "
                     f"{residual['fit_mse']:.3g}")
    return f"warm start: {'; then '.join(parts)}; {fit['seconds']:.0f}s in all"
