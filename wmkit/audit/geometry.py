"""Geometry probes of the online encoder (reference §7, docs/reference.md#s7), computed from
embeddings already encoded.

Everything here is a function of NumPy arrays: per-loop pooled readouts of the before and after
states, final embeddings, labels and trajectory ids. The audit encodes; this module measures.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from wmkit import metrics

PROBE_SEED = 0
"""Seed of the fixed 80/20 split shared by every linear probe (the same rows for every loop, so
loop-to-loop differences are not split noise; the reference drew a fresh split per call)."""

MIN_PROBE_ROWS = 20
"""A label is probed only with at least this many labelled rows and two classes."""


def _centred(x: np.ndarray) -> dict:
    c = metrics.effective_rank_centred(x)
    return {"erank": c.erank, "normalised": c.normalised}


def label_probes(loop_states: Sequence[np.ndarray], loop_deltas: Sequence[np.ndarray] | None,
                 labels: Mapping[str, np.ndarray], label_names: Mapping[str, Sequence[str]] | None = None,
                 seed: int = PROBE_SEED) -> dict:
    """Linear-probe accuracy of each label from each loop, beside its majority-class baseline.

    ``from_before``: the loop-ℓ before-embedding (reference §7 (docs/reference.md#s7) PROBE 1);
    ``from_delta``: the loop-ℓ change ``z_after − z_before`` (what the edit did). Missing
    labels (−1) are dropped.
    """
    out = {}
    for name, y in labels.items():
        y = np.asarray(y).astype(np.int64)
        labelled = y >= 0
        present = np.unique(y[labelled])
        entry = {"classes": list((label_names or {}).get(name, [])) or [str(c) for c in present],
                 "labelled_rows": int(labelled.sum())}
        if labelled.sum() < MIN_PROBE_ROWS or present.size < 2:
            entry["skipped"] = (f"{int(labelled.sum())} labelled rows in {present.size} class(es): "
                                f"need {MIN_PROBE_ROWS}+ rows and 2+ classes")
            out[name] = entry
            continue
        names = list((label_names or {}).get(name, []))
        entry["class_shares"] = {(names[c] if 0 <= c < len(names) else str(c)): round(float(np.mean(y[labelled] == c)), 4)
                                 for c in present.tolist()}
        for key, states in (("from_before", loop_states), ("from_delta", loop_deltas)):
            if states is None:
                continue
            rows = []
            for i, x in enumerate(states):
                res = metrics.linear_probe_accuracy(x, y, seed=seed)
                rows.append({"loop": i + 1, "accuracy": res.accuracy, "majority_baseline": res.majority_baseline,
                             "n_train": res.n_train, "n_test": res.n_test})
            entry[key] = rows
        out[name] = entry
    return out


def geometry_probes(*, online_before: np.ndarray, online_after: np.ndarray, target_before: np.ndarray,
                    loops_before: Sequence[np.ndarray] | None, loops_after: Sequence[np.ndarray] | None,
                    labels: Mapping[str, np.ndarray] | None = None,
                    label_names: Mapping[str, Sequence[str]] | None = None,
                    trajectory_deltas: np.ndarray | None = None, trajectory_ids: np.ndarray | None = None,
                    seed: int = PROBE_SEED) -> dict:
    """Every §7 (docs/reference.md#s7) probe the embeddings allow; JSON-ready.

    - ``signal_ratio``: per loop, mean ‖z^ℓ_after − z^ℓ_before‖ / ‖z^ℓ_before‖;
    - ``erank_states`` / ``erank_deltas``: centred effective rank (§7 (docs/reference.md#s7) form) of
      online(before) and of online(after) − online(before), with the ``min(N − 1, D)``-normalised value;
    - ``top_singular_share``: centred S₀²/ΣS² of online(before) and target(before);
    - ``delta_probe``: per loop, held-out mean cosine of a linear map from the loop-ℓ before-embedding
      to the final online delta (the linear ceiling, reference PROBE 2, docs/reference.md#s7);
    - ``cross_loop_delta_cos``: mean cos between the loop-i and loop-j deltas (PROBE 4);
    - ``loop_straightness``: per interior loop, mean cos(z_{ℓ+1} − z_ℓ, z_ℓ − z_{ℓ−1}) of the before state;
    - ``probes``: :func:`label_probes`;
    - ``trajectories``: consecutive-delta cosine and straightness over successive edits of one file.
    """
    out: dict = {}
    deltas = online_after - online_before
    out["erank_states"] = _centred(online_before)
    out["erank_deltas"] = _centred(deltas)
    out["top_singular_share"] = {"online": metrics.top_singular_share(online_before),
                                 "target": metrics.top_singular_share(target_before)}
    if loops_before is not None and loops_after is not None and len(loops_before) == len(loops_after):
        n_loops = len(loops_before)
        out["loops"] = n_loops
        loop_deltas = [a - b for a, b in zip(loops_after, loops_before)]
        out["signal_ratio"] = [metrics.signal_ratio(b, a) for b, a in zip(loops_before, loops_after)]
        out["delta_probe"] = [metrics.linear_delta_probe(b, deltas, seed=seed) for b in loops_before]
        out["loop_straightness"] = metrics.loop_straightness(loops_before)
        out["cross_loop_delta_cos"] = [[metrics.mean_cos(loop_deltas[i], loop_deltas[j]) for j in range(n_loops)]
                                       for i in range(n_loops)]
        states, ldeltas = loops_before, loop_deltas
    else:
        out["loops"] = None
        out["note"] = "the encoder exposes no per-loop readouts: per-loop probes use the final embedding only"
        out["signal_ratio"] = [metrics.signal_ratio(online_before, online_after)]
        out["delta_probe"] = [metrics.linear_delta_probe(online_before, deltas, seed=seed)]
        out["loop_straightness"] = []
        states, ldeltas = [online_before], [deltas]
    out["probes"] = label_probes(states, ldeltas, labels or {}, label_names, seed=seed)
    if trajectory_deltas is not None and trajectory_ids is not None:
        out["trajectories"] = {
            "rows": int(len(trajectory_ids)),
            "trajectories": int(len(np.unique(trajectory_ids))),
            "pairs": metrics.trajectory_pair_count(trajectory_ids),
            "consecutive_delta_cos": metrics.consecutive_delta_cos(trajectory_deltas, trajectory_ids),
            "straightness": metrics.straightness(trajectory_deltas, trajectory_ids),
        }
    return out


def select_trajectory_rows(trajectory: np.ndarray, candidates: np.ndarray, *, max_rows: int, seed: int = 0,
                           min_edits: int = 2) -> np.ndarray:
    """Rows of whole trajectories (``min_edits``+ candidate rows sharing an id), up to ``max_rows``.

    Trajectories are drawn in a seeded random order and kept whole; the returned rows are sorted, so
    the edits of one file stay in data order (successive edits).
    """
    candidates = np.sort(np.asarray(candidates, dtype=np.int64))
    ids = np.asarray(trajectory)[candidates]
    valid = ids >= 0
    candidates, ids = candidates[valid], ids[valid]
    uniq, counts = np.unique(ids, return_counts=True)
    multi = uniq[counts >= min_edits]
    if multi.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(multi.size)
    size_of = dict(zip(uniq.tolist(), counts.tolist()))
    chosen, total = [], 0
    for t in multi[order]:
        if total + size_of[int(t)] > max_rows and chosen:
            continue
        chosen.append(t)
        total += size_of[int(t)]
        if total >= max_rows:
            break
    return candidates[np.isin(ids, np.asarray(chosen))]
