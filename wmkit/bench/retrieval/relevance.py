"""Which gallery edits are relevant to a query, the ranking, and its scores (steps 3 to 5 of the protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from wmkit.errors import RecipeError

#: the four relevance criteria of reference §6 (docs/reference.md#s6), in table order
CRITERIA = ("by_edit_type", "by_joint", "cos@0.9", "cos@0.95")
ACTION_CHOICES = ("15d", "7d", "native")
DEPTH = 10


@dataclass
class Annotations:
    """What relevance reads about a set of edits: integer labels (−1 missing) and action vectors."""

    labels: Mapping[str, np.ndarray]
    actions: np.ndarray


def parse_criterion(name: str) -> tuple[str, Any]:
    """``by_<label>`` → ("label", label); ``cos@<t>`` → ("cos", t)."""
    if name.startswith("by_") and len(name) > 3:
        return "label", name[3:]
    if name.startswith("cos@"):
        try:
            return "cos", float(name[4:])
        except ValueError:
            pass
    raise ValueError(f"unknown relevance criterion {name!r}: use by_<label> or cos@<threshold>")


def relevance_matrix(criterion: str, queries: Annotations, gallery: Annotations) -> np.ndarray:
    """Bool [Q, G]: whether gallery edit g is relevant to query q under ``criterion``
    (reference §6, docs/reference.md#s6).

    ``by_<label>``: equal labels, both present (≥ 0). ``cos@t``: cos(a_q, a_g) > t on the raw
    action vectors (a zero vector has cosine 0 with everything).
    """
    kind, arg = parse_criterion(criterion)
    if kind == "label":
        if arg not in queries.labels or arg not in gallery.labels:
            raise KeyError(f"no {arg!r} labels")
        lq = np.asarray(queries.labels[arg], dtype=np.int64)[:, None]
        lg = np.asarray(gallery.labels[arg], dtype=np.int64)[None, :]
        return (lq == lg) & (lq >= 0) & (lg >= 0)
    from wmkit.metrics import l2_normalize

    cos = l2_normalize(queries.actions) @ l2_normalize(gallery.actions).T
    return cos > arg


def rank_gallery(query_vecs: np.ndarray, gallery_vecs: np.ndarray, depth: int = DEPTH) -> np.ndarray:
    """Int64 [Q, depth]: gallery indices by decreasing cosine (faiss inner product on unit rows).

    Slots beyond the gallery size are −1.
    """
    from wmkit.search import nearest

    _, found = nearest(query_vecs, gallery_vecs, depth)
    if found.shape[1] < depth:
        found = np.hstack([found, -np.ones((found.shape[0], depth - found.shape[1]), dtype=np.int64)])
    return found


def score_ranking(ranking: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """MRR@10, R@1 and R@5 of a ranking against a relevance matrix (reference §6, docs/reference.md#s6)."""
    from wmkit.metrics import mrr_at_10, recall_at_k

    return {"mrr": mrr_at_10(ranking, relevant), "r_at_1": recall_at_k(ranking, relevant, 1),
            "r_at_5": recall_at_k(ranking, relevant, 5)}


def select_actions(actions: np.ndarray, mode: str, names: Sequence[str] | None = None
                   ) -> tuple[np.ndarray, list[str], str]:
    """The action vectors relevance uses: ``(actions, names, label)`` for ``--actions mode``.

    ``15d``: the checkpoint's 15-D vectors as they are; ``7d``: 7-D vectors as they are, or the
    first 7 dims of 15-D ones (reference §2 (docs/reference.md#s2): those *are* the 7-D vector); ``native``:
    whatever the checkpoint's domain produces (other domains).
    """
    actions = np.asarray(actions, dtype=np.float64)
    dims = actions.shape[1]
    names = list(names or [f"a{i}" for i in range(dims)])
    if mode == "native":
        keep = dims
    elif mode == "15d":
        if dims != 15:
            raise RecipeError(f"--actions 15d: this checkpoint's data has {dims}-D actions; pass --actions "
                              f"{'7d' if dims == 7 else 'native'}")
        keep = 15
    elif mode == "7d":
        if dims not in (7, 15):
            raise RecipeError(f"--actions 7d: this checkpoint's data has {dims}-D actions (not the code domain's "
                              f"7-D or 15-D vector); pass --actions native")
        keep = 7
    else:
        raise RecipeError(f"--actions {mode}: choose one of {', '.join(ACTION_CHOICES)}")
    label = f"{keep}-D" + (" (first 7 dims of the 15-D vector, reference §2)" if keep < dims else "")
    return actions[:, :keep], names[:keep], label
