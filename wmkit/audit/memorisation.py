"""Memorisation evidence for the audit: near-duplicate pairs, the run's own warnings, KNN trends.

- :func:`near_duplicates`: validation pairs whose (before, after) token content, and whose edit, are
  nearly the same as a training pair's (estimated Jaccard similarity of token 5-gram sets, bottom-k
  MinHash sketches).
- :func:`read_metrics_log`: the run's ``metrics.jsonl`` split into step, evaluation and warning rows.
- :func:`knn_trend`: whether the validation-probe KNN fell from its peak across saved checkpoints
  while the training loss kept falling (the classic memorisation signature).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

NEAR_DUPLICATE_JACCARD = 0.9
"""Two pairs have near-identical content when the Jaccard similarity of their token 5-gram sets (before
and after sides hashed apart) is estimated at or above this. Successive edits of one file usually
do: the validation split is by commit, so a file's neighbouring edits sit on both sides."""

EDIT_JACCARD = 0.5
"""... and they are near-duplicate *transitions* when, besides, the Jaccard similarity of their edits
is at or above this. The edit of a pair is the set of 5-grams it adds (in after, not before) plus
the set it removes (in before, not after), tagged apart; two pairs whose sides are identical (no
edit within the window) have equal, empty edits."""

NEAR_DUPLICATE_WARN_FRACTION = 0.01
"""Warn when more than this fraction of audited validation pairs has a near-duplicate transition in
training (same content and same edit: a cherry-pick, a backport, a revert of a revert...)."""

SHINGLE = 5
"""Token n-gram length of the shingles."""

SKETCH_SIZE = 32
"""k of the bottom-k MinHash sketch (estimate error of a Jaccard value J is about sqrt(J(1−J)/k))."""

COMMON_SHINGLE_POSTINGS = 256
"""Sketch values shared by more training pairs than this (boilerplate shingles) are not used to
propose candidates; candidates are still scored on their whole sketches."""

KNN_DROP_FRACTION = 0.2
"""KNN trend warning: the last checkpoint's probe KNN@5 is below (1 − this) x its peak ..."""

KNN_DROP_SIGMAS = 2.0
"""... and the drop exceeds this many binomial standard errors of the probe's gallery ..."""

LOSS_WINDOW = 50
"""... while the mean training loss over the last this-many logged steps before the last checkpoint is
lower than over the same window before the peak."""

_MAX = np.iinfo(np.uint64).max
_MUL = np.uint64(0x9E3779B97F4A7C15)
_TAGS = {"before": np.uint64(0x1D8E4E27C47D124F), "after": np.uint64(0x7A5B3C9E1F0D2B6A),
         "added": np.uint64(0x2545F4914F6CDD1D), "removed": np.uint64(0x5851F42D4C957F2D)}


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (uint64 -> well-spread uint64); wraps around on purpose."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return h


def _tagged(h: np.ndarray, tag: str) -> np.ndarray:
    """``h`` re-hashed with a tag (so equal 5-grams of different roles differ); ``MAX`` stays ``MAX``."""
    out = _mix(h ^ _TAGS[tag])
    out[h == _MAX] = _MAX
    return out


def _side_shingles(tokens: np.ndarray, pad_id: int) -> np.ndarray:
    """Hashes of every token ``SHINGLE``-gram of each row ([c, L − SHINGLE + 1]); PAD-touching -> MAX."""
    tok = tokens.astype(np.int64)
    c, length = tok.shape
    width = length - SHINGLE + 1
    if width <= 0:
        return np.full((c, 0), _MAX, dtype=np.uint64)
    h = np.full((c, width), np.uint64(1), dtype=np.uint64)
    valid = np.ones((c, width), dtype=bool)
    with np.errstate(over="ignore"):
        for j in range(SHINGLE):
            part = tok[:, j:j + width]
            valid &= part != pad_id
            h = _mix(h * _MUL + part.astype(np.uint64))
    h[valid & (h == _MAX)] = _MAX - np.uint64(1)  # MAX is reserved for "no shingle"
    h[~valid] = _MAX
    return h


def _bottom_k(h: np.ndarray) -> np.ndarray:
    """Per row, the ``SKETCH_SIZE`` smallest distinct values (``MAX``-padded), sorted."""
    h = np.sort(h, axis=1)
    dup = np.zeros_like(h, dtype=bool)
    dup[:, 1:] = h[:, 1:] == h[:, :-1]
    h[dup] = _MAX
    h.sort(axis=1)
    out = np.full((h.shape[0], SKETCH_SIZE), _MAX, dtype=np.uint64)
    k = min(SKETCH_SIZE, h.shape[1])
    out[:, :k] = h[:, :k]
    return out


def pair_sketches(before: np.ndarray, after: np.ndarray, pad_id: int, *, chunk: int = 1024
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Bottom-k MinHash sketches ``(content, edit)``, each [n, SKETCH_SIZE], of every pair.

    Content: the 5-grams of the before side plus those of the after side, hashed apart. Edit: the
    5-grams the pair adds plus those it removes, hashed apart (see :data:`EDIT_JACCARD`).
    """
    n = before.shape[0]
    content = np.full((n, SKETCH_SIZE), _MAX, dtype=np.uint64)
    edit = np.full((n, SKETCH_SIZE), _MAX, dtype=np.uint64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        hb = _side_shingles(np.asarray(before[start:stop]), pad_id)
        ha = _side_shingles(np.asarray(after[start:stop]), pad_id)
        content[start:stop] = _bottom_k(np.concatenate([_tagged(hb, "before"), _tagged(ha, "after")], axis=1))
        for i in range(stop - start):
            ub = np.unique(hb[i][hb[i] != _MAX])
            ua = np.unique(ha[i][ha[i] != _MAX])
            changes = np.concatenate([_tagged(np.setdiff1d(ua, ub, assume_unique=True), "added"),
                                      _tagged(np.setdiff1d(ub, ua, assume_unique=True), "removed")])
            if changes.size:
                edit[start + i] = _bottom_k(changes[None, :])[0]
    return content, edit


def sketch_jaccard(a: np.ndarray, b: np.ndarray, *, empty_equal: bool = False) -> float:
    """Bottom-k estimate of the Jaccard similarity of the two sets behind sketches ``a`` and ``b``.

    Two empty sets give 1.0 with ``empty_equal`` (two pairs without an edit have the same edit), else 0.
    """
    a, b = a[a != _MAX], b[b != _MAX]
    if a.size == 0 or b.size == 0:
        return 1.0 if (empty_equal and a.size == 0 and b.size == 0) else 0.0
    k = min(SKETCH_SIZE, max(a.size, b.size))
    union = np.union1d(a, b)[:k]
    both = np.intersect1d(a, b)
    return float(np.isin(union, both).sum() / union.size)


def near_duplicates(val_before, val_after, train_before, train_after, pad_id: int, *,
                    val_ids: Sequence | None = None, train_ids: Sequence | None = None,
                    examples: int = 5) -> dict:
    """Validation pairs whose content, and whose edit, nearly duplicate a training pair's.

    Returns ``similar_content`` (validation pairs with a training pair of content Jaccard ≥
    :data:`NEAR_DUPLICATE_JACCARD`), ``near_duplicates`` (of those, the ones whose edit also matches,
    Jaccard ≥ :data:`EDIT_JACCARD`), ``exact_duplicates`` (both sides token-identical),
    ``unchanged_in_window`` (near duplicates whose two sides are identical after truncation: the edit
    lies beyond the window, defect D6, docs/reference.md#d6), the fractions and a few examples ``(val id,
    train id, content jaccard, edit jaccard)``.
    """
    cv, ev = pair_sketches(val_before, val_after, pad_id)
    ct, et = pair_sketches(train_before, train_after, pad_id)
    n_val, n_train = cv.shape[0], ct.shape[0]

    # inverted index of training content-sketch values (without boilerplate values)
    t_vals = ct.reshape(-1)
    t_rows = np.repeat(np.arange(n_train), SKETCH_SIZE)
    keep = t_vals != _MAX
    t_vals, t_rows = t_vals[keep], t_rows[keep]
    order = np.argsort(t_vals, kind="stable")
    t_vals, t_rows = t_vals[order], t_rows[order]
    uniq, first, counts = np.unique(t_vals, return_index=True, return_counts=True)
    informative = counts <= COMMON_SHINGLE_POSTINGS

    v_vals = cv.reshape(-1)
    v_rows = np.repeat(np.arange(n_val), SKETCH_SIZE)
    # best[v] = (is near-duplicate transition, content jaccard, edit jaccard, train row)
    best: dict[int, tuple[bool, float, float, int]] = {}
    if len(uniq):
        pos = np.minimum(np.searchsorted(uniq, v_vals), len(uniq) - 1)
        found = (v_vals != _MAX) & (uniq[pos] == v_vals) & informative[pos]
        starts, sizes = first[pos[found]], counts[pos[found]]
        total = int(sizes.sum())
        if total:
            offsets = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            pair_t = t_rows[np.repeat(starts, sizes) + offsets]
            pair_v = np.repeat(v_rows[found], sizes)
            cand, shared = np.unique(pair_v.astype(np.int64) * n_train + pair_t, return_counts=True)
            # a pair with Jaccard J shares about J*k of its sketch; ask for a generous fraction of that
            need = max(1, int(math.floor(SKETCH_SIZE * NEAR_DUPLICATE_JACCARD * 0.5)))
            for code in cand[shared >= need]:
                vr, tr = divmod(int(code), n_train)
                jc = sketch_jaccard(cv[vr], ct[tr])
                if jc < NEAR_DUPLICATE_JACCARD:
                    continue
                je = sketch_jaccard(ev[vr], et[tr], empty_equal=True)
                entry = (je >= EDIT_JACCARD, jc, je, tr)
                if vr not in best or entry[:3] > best[vr][:3]:
                    best[vr] = entry

    dup_rows = {v: e for v, e in best.items() if e[0]}
    exact = sum(1 for v, e in dup_rows.items()
                if np.array_equal(val_before[v], train_before[e[3]]) and np.array_equal(val_after[v], train_after[e[3]]))
    unchanged = sum(1 for v in dup_rows if np.array_equal(val_before[v], val_after[v]))
    shown = sorted(dup_rows.items(), key=lambda item: (-item[1][2], -item[1][1]))[:examples]

    def _name(ids, i):
        return str(ids[i]) if ids is not None else int(i)

    return {
        "content_threshold": NEAR_DUPLICATE_JACCARD, "edit_threshold": EDIT_JACCARD,
        "val_checked": int(n_val), "train_checked": int(n_train),
        "similar_content": len(best),
        "similar_content_fraction": len(best) / n_val if n_val else 0.0,
        "near_duplicates": len(dup_rows),
        "exact_duplicates": int(exact),
        "unchanged_in_window": int(unchanged),
        "fraction": len(dup_rows) / n_val if n_val else 0.0,
        "examples": [{"val": _name(val_ids, v), "train": _name(train_ids, e[3]), "content_jaccard": round(e[1], 3),
                      "edit_jaccard": round(e[2], 3)} for v, e in shown],
    }


# ----------------------------------------------------------------------------------------------
# the run's own log
# ----------------------------------------------------------------------------------------------
def read_metrics_log(path: str | Path, up_to_step: int | None = None) -> dict:
    """``{"steps": [...], "evals": [...], "warnings": [...], "bad_lines": n}`` from ``metrics.jsonl``.

    Missing file -> empty lists. A line that is not JSON (a run killed mid-write) is counted and
    skipped. ``up_to_step`` keeps only rows up to that step: auditing an early checkpoint of a run
    must not see what the run did after it.
    """
    out = {"steps": [], "evals": [], "warnings": [], "bad_lines": 0}
    path = Path(path)
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            out["bad_lines"] += 1
            continue
        if not isinstance(row, dict):
            out["bad_lines"] += 1
            continue
        if up_to_step is not None and isinstance(row.get("step"), (int, float)) and row["step"] > up_to_step:
            continue
        event = row.get("event")
        if event == "eval":
            out["evals"].append(row)
        elif event == "warning":
            out["warnings"].append(row)
        elif event is None and "step" in row:
            out["steps"].append(row)
    return out


def training_warnings(log: dict) -> list[dict]:
    """The warnings the run raised while training, as audit warnings (kind ``training:<kind>``)."""
    return [{"kind": f"training:{w.get('kind', 'warning')}", "severity": "warning",
             "message": f"during training, step {w.get('step')}: {w.get('message', '')}"}
            for w in log.get("warnings", [])]


def _mean_loss_before(steps: list[dict], step: int) -> float:
    window = [r["loss"] for r in steps if r.get("step", 0) <= step and isinstance(r.get("loss"), (int, float))]
    window = window[-LOSS_WINDOW:]
    return float(np.mean(window)) if window else float("nan")


def knn_trend(log: dict, checkpoint_steps: Sequence[int] = ()) -> dict:
    """Probe KNN@5 across saved checkpoints versus the training loss (memorisation signature).

    Uses the evaluation rows at the steps of saved checkpoints when there are at least 3 of them,
    else every evaluation row. Returns the series, the peak, and ``falling_while_loss_falls``: the last
    KNN@5 is below ``(1 − KNN_DROP_FRACTION)`` x the peak by more than ``KNN_DROP_SIGMAS`` binomial
    standard errors, the peak came earlier, and the training loss kept falling after it.
    """
    evals = [e for e in log.get("evals", []) if isinstance(e.get("knn_at_5"), (int, float))]
    evals.sort(key=lambda e: e["step"])
    wanted = set(int(s) for s in checkpoint_steps)
    at_ckpt = [e for e in evals if e["step"] in wanted]
    series = at_ckpt if len(at_ckpt) >= 3 else evals
    out = {"basis": "checkpoints" if series is at_ckpt and at_ckpt else "evaluations",
           "steps": [int(e["step"]) for e in series], "knn_at_5": [float(e["knn_at_5"]) for e in series],
           "falling_while_loss_falls": False}
    if len(series) < 3:
        out["note"] = f"only {len(series)} evaluation points: no trend"
        return out
    peak_i = int(np.argmax(out["knn_at_5"]))
    peak, last = series[peak_i], series[-1]
    n = int(last.get("gallery_size") or 0) or 128
    p = float(peak["knn_at_5"])
    sigma = math.sqrt(max(p * (1 - p), 1e-12) / n)
    drop = p - float(last["knn_at_5"])
    loss_peak = _mean_loss_before(log.get("steps", []), int(peak["step"]))
    loss_last = _mean_loss_before(log.get("steps", []), int(last["step"]))
    out.update(peak_step=int(peak["step"]), peak_knn_at_5=p, last_knn_at_5=float(last["knn_at_5"]),
               loss_at_peak=loss_peak, loss_at_last=loss_last, gallery_size=n)
    if (peak_i < len(series) - 1 and float(last["knn_at_5"]) < (1 - KNN_DROP_FRACTION) * p
            and drop > KNN_DROP_SIGMAS * sigma and math.isfinite(loss_peak) and math.isfinite(loss_last)
            and loss_last < loss_peak):
        out["falling_while_loss_falls"] = True
    return out
