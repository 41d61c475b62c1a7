"""``wmkit audit``: load a checkpoint, encode held-out pairs, measure, judge. Results are JSON-ready.

Flow of :func:`run_audit`:

1. resolve the checkpoint (a run directory -> its best, else latest checkpoint), load it, load the
   data it was trained on (or ``data``), refuse another domain or vocabulary;
2. draw N validation rows (rows the training never saw) with a fixed seed, independent of the
   training seed, and an equal-size sample of training rows;
3. encode both in chunks of :data:`ENCODE_CHUNK` (:mod:`wmkit.encode`, under ``torch.inference_mode``);
4. discriminability (:func:`summary_metrics`), action sensitivity (:func:`action_sensitivity`),
   memorisation evidence (:mod:`wmkit.audit.memorisation`), optional geometry
   (:mod:`wmkit.audit.geometry`), then the verdict (:mod:`wmkit.audit.verdict`);
5. save ``audit.json`` in the run directory (see :func:`audit_path`) for ``wmkit compare``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wmkit import __version__, metrics
from wmkit.audit import baselines, memorisation, verdict
from wmkit.encode import ENCODE_CHUNK
from wmkit.encode import OPTIONAL_PARTS as ALL_PARTS
from wmkit.errors import CheckpointError, DataError, WmkitError
from wmkit.linear_edit import LINEAR_FIT_PAIRS
from wmkit.progress import task_bar

AUDIT_FORMAT = "wmkit-audit/1"
FULL_VAL_SIZE = 5000
"""``--full-val`` audits this many validation pairs (reference §5), or the whole split if smaller."""
DEFAULT_VAL_SIZE = 1000
"""Validation pairs audited without ``--full-val`` or ``--val-size``."""
MIN_VAL_SIZE = 10
"""Fewer validation pairs than this cannot give a meaningful audit."""
SAMPLE_SEED = 0
"""Seed of the validation and training samples: the same rows for every training seed (defect D4)."""
ACTION_SHUFFLE_SEED = 1
"""Seed of the derangement that gives every prediction another sample's action."""
KNN_KS = (1, 5, 10, 50)
CURVE_KS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
GEOMETRY_TRAJECTORY_ROWS = 2000
"""At most this many rows (whole trajectories of 2+ edits; and at most the audit's N) feed the
trajectory probes."""
AUDIT_FILE = "audit.json"
#: which rows an audit measures: the validation split, or the held-out repositories
AUDIT_SPLITS = ("val", "holdout")

#: one line per reported metric: what exactly it is (defect D9: name every form)
METRIC_NAMES = {
    "knn_at_k": "KNN@k: fraction of predictions ẑ_i whose own target z̄_i (target(after)) is among the k "
                "most cosine-similar of all N targets (gallery N); random = k/N",
    "erank_online": "uncentred effective rank exp H(s/Σs) of L2-normalised online(before) rows "
                    "(reference §5 full-val form); likewise erank_target (target(after)), erank_pred",
    "erank_centred": "centred effective rank exp H(S²/ΣS²) (reference §7 isotropy form); normalised = "
                     "erank / min(N−1, D)",
    "cross_diag": "mean cos(ẑ_i, z̄_i); cross_off: mean over i≠j of cos(ẑ_i, z̄_j); gap = diag − off",
    "cos": "mean cos(ẑ, target(after))",
    "delta_cos": "mean cos(ẑ − online(before), target(after) − online(before))",
    "copy_cos": "reference code's copy baseline: mean cos(online(before), target(after)) (cross-encoder)",
    "copy_cos_paper": "paper Eq. 1 copy baseline: mean cos(target(before), target(after))",
    "lift": "cos − copy_cos; lift_paper = cos − copy_cos_paper",
    "std_l2": "mean over dimensions of the std of L2-normalised rows; ≈ 1/sqrt(D) spread, 0 collapsed",
    "offdiag_self_cos": "mean over i≠j of cos(x_i, x_j) within one set",
}


# ----------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------
def choose_size(available: int, *, full_val: bool = False, val_size: int | None = None) -> int:
    """How many validation pairs to audit; :class:`DataError` when the split cannot supply them.

    ``val_size`` asks for exactly that many (it wins over ``full_val``); ``full_val`` asks for
    :data:`FULL_VAL_SIZE` or the whole split if smaller; neither gives :data:`DEFAULT_VAL_SIZE` or the
    whole split if smaller.
    """
    if val_size is not None:
        if val_size < MIN_VAL_SIZE:
            raise DataError(f"--val-size {val_size}: an audit needs at least {MIN_VAL_SIZE} validation pairs")
        if val_size > available:
            raise DataError(f"--val-size {val_size}: the validation split has only {available} pairs the "
                            f"training never saw; ask for {available} or fewer, or pass --full-val")
        return int(val_size)
    n = min(FULL_VAL_SIZE if full_val else DEFAULT_VAL_SIZE, available)
    if n < MIN_VAL_SIZE:
        raise DataError(f"the validation split has only {available} pairs (an audit needs at least "
                        f"{MIN_VAL_SIZE}); use a larger data source or a higher data.val_percent")
    return int(n)


def sample_rows(indices: Sequence[int], n: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``n`` of ``indices`` drawn with ``seed``, sorted (all of them when ``n`` ≥ their count)."""
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    if n >= idx.size:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))


def derangement(n: int, seed: int = ACTION_SHUFFLE_SEED) -> np.ndarray:
    """A permutation with no fixed point (one random cycle): row i takes row ``perm[i]``'s action."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 rows")
    order = np.random.default_rng(seed).permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


# ----------------------------------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------------------------------
@dataclass
class Encoded:
    """Embeddings of some rows as float32 NumPy arrays [N, D] (per-loop lists when asked)."""

    rows: np.ndarray
    online_before: np.ndarray
    online_after: np.ndarray | None
    target_before: np.ndarray | None
    target_after: np.ndarray
    pred: np.ndarray
    #: the state the predictor read (online(before), or an early loop's readout); predictions with
    #: shuffled actions start from it
    predictor_input: np.ndarray | None = None
    loops_before: list[np.ndarray] | None = None
    loops_after: list[np.ndarray] | None = None
    seconds: float = 0.0


def encode(model, data, rows: np.ndarray, *, loops: bool, parts: frozenset = ALL_PARTS, progress=None,
           label: str = "encoding", chunk: int = ENCODE_CHUNK) -> Encoded:
    """Encode ``rows`` of prepared ``data`` in chunks (:func:`wmkit.encode.encode_transitions`).

    ``parts`` names the optional embeddings wanted (:data:`ALL_PARTS`); those not asked for may come
    back as ``None``. ``loops`` adds the per-loop online readouts.
    """
    from wmkit.encode import encode_transitions

    task = progress.add_task(label, total=len(rows)) if progress is not None else None
    t0 = time.perf_counter()
    out = encode_transitions(model, _Rows(data.before, rows), _Rows(data.after, rows),
                             _Rows(data.actions, rows, np.float32), parts=parts, loops=loops, chunk=chunk,
                             progress=None if task is None else (lambda n: progress.advance(task, n)))
    return Encoded(rows=np.asarray(rows), seconds=time.perf_counter() - t0, **out)


class _Rows:
    """Rows ``rows`` of an array-like (a memory map), read one slice at a time."""

    def __init__(self, array, rows: np.ndarray, dtype=None):
        self.array, self.rows, self.dtype = array, np.asarray(rows), dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, s: slice) -> np.ndarray:
        return np.asarray(self.array[self.rows[s]], dtype=self.dtype)


def predict_with_actions(model, z_state: np.ndarray, data, action_rows: np.ndarray,
                         base: np.ndarray | None = None, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Predictions from ``z_state`` with the actions of prepared ``data`` rows ``action_rows`` (the
    action vector and, for action encoders that read the edit, those rows' states), in chunks
    without gradients. ``base`` is target(before) of the predicted rows, for models that start from it."""
    from wmkit.encode import predict_from

    return predict_from(model, z_state, _Rows(data.actions, action_rows, np.float32), _Rows(data.before, action_rows),
                        _Rows(data.after, action_rows), base=base, chunk=chunk)


def encode_targets(model, data, rows: np.ndarray, *, after_only: bool = True, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """The target encoder's readout of the after states of ``rows`` (``after_only=False``: before states)."""
    from wmkit.encode import encode_states

    return encode_states(model, _Rows(data.after if after_only else data.before, rows), target=True, chunk=chunk)


# ----------------------------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------------------------
class _Clock:
    def __init__(self):
        self.search = 0.0

    def knn(self, queries, gallery, ks) -> dict[int, float]:
        t0 = time.perf_counter()
        try:
            return metrics.knn_accuracy(queries, gallery, ks)
        finally:
            self.search += time.perf_counter() - t0

    def ranks(self, queries, gallery, max_k) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return metrics.knn_ranks(queries, gallery, max_k)
        finally:
            self.search += time.perf_counter() - t0


def knn_block(pred: np.ndarray, target: np.ndarray, ks: Sequence[int] = KNN_KS, clock: _Clock | None = None) -> dict:
    """``knn_at_k`` and ``random_knn_at_k`` for every k (gallery = all N targets)."""
    n = len(target)
    acc = (clock or _Clock()).knn(pred, target, ks)
    out = {}
    for k in ks:
        out[f"knn_at_{k}"] = acc[k]
        out[f"random_knn_at_{k}"] = metrics.random_baseline(k, n)
    return out


def summary_metrics(*, online_before, target_before, target_after, pred, ks: Sequence[int] = KNN_KS,
                    clock: _Clock | None = None, full: bool = True) -> dict:
    """Discriminability of one set of embeddings; JSON-ready. ``full=False`` skips spectra;
    ``target_before=None`` skips the paper's copy baseline."""
    n, d = pred.shape
    out: dict[str, Any] = {"gallery_size": int(n), "embedding_dim": int(d)}
    out.update(knn_block(pred, target_after, ks, clock))
    cross = metrics.cross_cosines(pred, target_after)
    out.update(cross_diag=cross["diag"], cross_off=cross["off"], gap=cross["gap"])
    cos = metrics.mean_cos(pred, target_after)
    copy_ref = metrics.copy_cos_reference(online_before, target_after)
    out.update(cos=cos, delta_cos=metrics.delta_cos(pred, target_after, online_before),
               copy_cos=copy_ref, lift=metrics.lift(cos, copy_ref))
    if target_before is not None:
        copy_paper = metrics.copy_cos_paper(target_before, target_after)
        out.update(copy_cos_paper=copy_paper, lift_paper=metrics.lift(cos, copy_paper))
    if full:
        out.update(erank_online=metrics.effective_rank_uncentred(online_before, normalize_rows=True),
                   erank_target=metrics.effective_rank_uncentred(target_after, normalize_rows=True),
                   erank_pred=metrics.effective_rank_uncentred(pred, normalize_rows=True))
        out["erank_centred"] = {}
        for name, x in (("online", online_before), ("target", target_after), ("pred", pred)):
            c = metrics.effective_rank_centred(x)
            out["erank_centred"][name] = {"erank": c.erank, "normalised": c.normalised}
        out["std_l2"] = {name: metrics.std_of_l2_normalized(x) for name, x in
                         (("online", online_before), ("target", target_after), ("pred", pred))}
        out["std_l2_spread"] = 1.0 / math.sqrt(d)
        out["offdiag_self_cos"] = {"online": metrics.mean_offdiag_self_cos(online_before),
                                   "target": metrics.mean_offdiag_self_cos(target_after)}
    return out


def knn_curve(pred: np.ndarray, target: np.ndarray, shuffled: np.ndarray | None = None,
              clock: _Clock | None = None) -> dict:
    """KNN@k for k in :data:`CURVE_KS` (up to N), with random and shuffled-action curves."""
    n = len(target)
    ks = [k for k in CURVE_KS if k <= n] or [1]
    clock = clock or _Clock()
    ranks = clock.ranks(pred, target, max(ks))
    out = {"k": ks, "rate": [float((ranks < k).mean()) for k in ks],
           "random": [metrics.random_baseline(k, n) for k in ks]}
    if shuffled is not None:
        sr = clock.ranks(shuffled, target, max(ks))
        out["shuffled_action"] = [float((sr < k).mean()) for k in ks]
    return out


def action_sensitivity(*, true: dict, shuffled_pred: np.ndarray, target_after: np.ndarray,
                       online_before: np.ndarray, actions: np.ndarray, perm: np.ndarray,
                       clock: _Clock | None = None) -> dict:
    """Predictions made with another sample's action (``actions[perm]``) versus the true ones (D10).

    ``true`` holds the true-action ``knn_at_k``, ``cos`` and ``delta_cos``. ``ignores_action`` follows
    :func:`wmkit.audit.verdict.ignores_action` (``None`` = inconclusive).
    """
    n = len(target_after)
    out = knn_block(shuffled_pred, target_after, KNN_KS, clock)
    out = {k: v for k, v in out.items() if not k.startswith("random_")}
    out["cos"] = metrics.mean_cos(shuffled_pred, target_after)
    out["delta_cos"] = metrics.delta_cos(shuffled_pred, target_after, online_before)
    out["true_knn_at_5"], out["true_cos"], out["true_delta_cos"] = true["knn_at_5"], true["cos"], true["delta_cos"]
    out["knn_at_5_ratio"] = out["knn_at_5"] / true["knn_at_5"] if true["knn_at_5"] > 0 else float("nan")
    out["knn_at_5_drop"] = true["knn_at_5"] - out["knn_at_5"]
    out["cos_drop"] = true["cos"] - out["cos"]
    out["pred_shift_cos"] = metrics.mean_cos(shuffled_pred, true["pred"]) if "pred" in true else None
    a = np.asarray(actions, dtype=np.float64)
    out["identical_action_fraction"] = float(np.mean(np.all(np.isclose(a, a[perm]), axis=1)))
    rnd = metrics.random_baseline(5, n)
    out["ignores_action"] = verdict.ignores_action(true["knn_at_5"], out["knn_at_5"], rnd)
    if out["ignores_action"] is None:
        out["statement"] = (f"inconclusive: KNN@5 with true actions ({true['knn_at_5']:.4f}) is under "
                            f"{verdict.ACTION_TEST_MIN_OVER_RANDOM:g}x random ({rnd:.4f}), so there is no retrieval "
                            f"for a wrong action to lose")
    elif out["ignores_action"]:
        out["statement"] = (f"the predictor ignores the action: with every action swapped for another sample's, "
                            f"KNN@5 is {out['knn_at_5']:.4f} vs {true['knn_at_5']:.4f} with the true action "
                            f"({100 * out['knn_at_5_ratio']:.0f}%)")
    else:
        out["statement"] = (f"the predictor uses the action: swapping actions drops KNN@5 from "
                            f"{true['knn_at_5']:.4f} to {out['knn_at_5']:.4f} and cos by {out['cos_drop']:+.4f}")
    return out


DROPPED_WARN_FRACTION = 0.5
"""Warn when the domain dropped more than this fraction of the source's rows: data of another domain
(kernel sources read by the code domain, say) mostly fails the domain's filters."""


def data_warnings(meta: dict, domain_name: str) -> list[dict]:
    """Warnings about the prepared data itself (from ``PreparedData.meta``)."""
    counts = meta.get("counts") or {}
    read, kept = counts.get("rows_read"), counts.get("kept")
    out = []
    if read and kept is not None and kept < (1 - DROPPED_WARN_FRACTION) * read:
        reasons = sorted((counts.get("dropped") or {}).items(), key=lambda kv: -kv[1])[:3]
        out.append({"kind": "data_dropped", "severity": "warning",
                    "message": f"the {domain_name} domain kept only {kept} of {read} rows of {meta.get('source')} "
                               f"(dropped: {', '.join(f'{k} {v}' for k, v in reasons) or '?'}): is this data of "
                               f"another domain?"})
    rate = (meta.get("truncation") or {}).get("rate")
    if isinstance(rate, (int, float)) and rate > 0.05:
        out.append({"kind": "truncation", "severity": "info",
                    "message": f"{100 * rate:.1f}% of pairs are identical after truncation to data.max_len "
                               f"(defect D6): their edit lies beyond the window"})
    return out


def train_val_gap(train: dict, val: dict) -> dict:
    """Train-sample versus validation metrics at equal N, and the memorisation rule."""
    keys = ("knn_at_1", "knn_at_5", "knn_at_10", "cos", "delta_cos", "gap", "lift")
    return {"sample_size": val["gallery_size"],
            "train": {k: train[k] for k in keys}, "val": {k: val[k] for k in keys},
            "difference": {k: train[k] - val[k] for k in keys},
            "memorising": verdict.memorising(train["knn_at_5"], val["knn_at_5"])}


def collect_warnings(result: dict) -> list[dict]:
    """Warnings derived from a result (besides those recorded by training); each has kind, message."""
    out = []
    gap = result.get("train_gap")
    if gap and gap.get("memorising"):
        out.append({"kind": "memorisation", "severity": "warning",
                    "message": f"train KNN@5 {gap['train']['knn_at_5']:.4f} vs validation {gap['val']['knn_at_5']:.4f} "
                               f"over equal galleries of N={gap['sample_size']}: the model retrieves training pairs far "
                               f"better than held-out ones"})
    nd = result.get("near_duplicates")
    if nd and nd.get("near_duplicates"):
        severe = nd["fraction"] > memorisation.NEAR_DUPLICATE_WARN_FRACTION
        out.append({"kind": "near_duplicates", "severity": "warning" if severe else "info",
                    "message": f"{nd['near_duplicates']} of {nd['val_checked']} validation pairs "
                               f"({100 * nd['fraction']:.2f}%) nearly duplicate a training transition: content "
                               f"5-gram Jaccard >= {nd['content_threshold']} and edit Jaccard >= "
                               f"{nd['edit_threshold']} ({nd['exact_duplicates']} token-identical; "
                               f"{nd.get('unchanged_in_window', 0)} with no edit inside the token window)"})
    if nd and nd.get("similar_content"):
        out.append({"kind": "similar_content", "severity": "info",
                    "message": f"{nd['similar_content']} of {nd['val_checked']} validation pairs "
                               f"({100 * nd['similar_content_fraction']:.1f}%) share >= {nd['content_threshold']:.0%} of "
                               f"their content with a training pair (usually another edit of the same file)"})
    trend = result.get("training_trend")
    if trend and trend.get("falling_while_loss_falls"):
        out.append({"kind": "knn_falling", "severity": "warning",
                    "message": f"probe KNN@5 fell from {trend['peak_knn_at_5']:.4f} (step {trend['peak_step']}) to "
                               f"{trend['last_knn_at_5']:.4f} (step {trend['steps'][-1]}) while the training loss "
                               f"fell from {trend['loss_at_peak']:.4f} to {trend['loss_at_last']:.4f}: memorising"})
    action = result.get("action_sensitivity")
    if action and action.get("ignores_action"):
        out.append({"kind": "ignores_action", "severity": "warning", "message": action["statement"]})
    for name in ("online", "target", "pred"):
        c = result.get("erank_centred", {}).get(name, {})
        if c and c.get("normalised", 1.0) < verdict.COLLAPSE_NORMALISED_ERANK:
            out.append({"kind": f"collapse_{name}", "severity": "warning",
                        "message": f"{name} embeddings use {c['erank']:.2f} effective directions "
                                   f"({c['normalised']:.3f} of min(N-1, D)): collapsed"})
    return out


# ----------------------------------------------------------------------------------------------
# persistence
# ----------------------------------------------------------------------------------------------
def audit_path(run_dir: str | Path) -> Path:
    """Where ``wmkit audit`` saves its result for ``wmkit compare``: ``RUN_DIR/audit.json``.

    It holds the latest audit of the run; the checkpoint, gallery size and options are inside, and
    ``compare`` re-runs the audit when the saved one is of another checkpoint.
    """
    return Path(run_dir) / AUDIT_FILE


def to_jsonable(obj):
    """NumPy scalars/arrays and NaN -> plain JSON values (NaN and inf become ``None``)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_result(result: dict, path: str | Path) -> Path:
    """Write ``result`` as JSON atomically."""
    from wmkit.checkpoint import write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, to_jsonable(result))
    return path


def load_result(path: str | Path) -> dict | None:
    """A saved audit, or ``None`` if absent, unreadable or of another format."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == AUDIT_FORMAT else None


# ----------------------------------------------------------------------------------------------
# the audit
# ----------------------------------------------------------------------------------------------
def _check_data(lc, domain, prepared) -> None:
    from wmkit.checkpoint import check_vocab

    check_vocab(lc.info, domain)
    meta_domain = (getattr(prepared, "meta", None) or {}).get("domain")
    if meta_domain and meta_domain != lc.info.get("domain"):
        raise CheckpointError(f"{lc.path}: checkpoint is of domain {lc.info.get('domain')!r} but the data was "
                              f"prepared for {meta_domain!r}; pass data of the checkpoint's domain")
    want = lc.info.get("action_dim")
    got = int(np.asarray(prepared.actions).shape[1])
    if want is not None and int(want) != got:
        raise CheckpointError(f"{lc.path}: checkpoint expects {want}-D actions but the data has {got}-D actions; "
                              f"pass data of the checkpoint's domain")


def _initial_model(lc, host):
    """The checkpoint's model as its recipe and seed built it at step 0, without disturbing the caller's
    random streams."""
    import random

    import torch

    from wmkit.model import WorldModel, build_initial_world_model
    from wmkit.plugins import get_host

    if not isinstance(lc.model, WorldModel):
        return None  # a model wmkit did not build has no recipe to rebuild it from
    info = lc.info
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        model = build_initial_world_model(lc.recipe, vocab_size=info["vocab_size"], pad_id=info["pad_id"],
                                          action_dim=info["action_dim"], resolve=(host or get_host()).constructor)
    random.setstate(py_state)
    np.random.set_state(np_state)
    return model.to(next(lc.model.parameters()).device).eval()


def run_audit(checkpoint_path: str | Path, *, full_val: bool = False, val_size: int | None = None,
              geometry: bool = False, data: str | None = None, progress: bool = True, save: bool = True,
              console=None, host=None, split: str = "val") -> dict:
    """Audit a run directory (its best checkpoint, else latest) or one checkpoint directory.

    ``data`` overrides the data source recorded in the checkpoint. Returns a JSON-ready dict (see
    ``docs/audit.md`` for every key); with ``save`` it is also written to :func:`audit_path` of the
    run directory. Bad input raises :class:`CheckpointError` or :class:`DataError` with one line.
    """
    from wmkit.checkpoint import load_checkpoint, resolve_checkpoint
    from wmkit.runtime import load_data, resolve_source

    t_start = time.perf_counter()
    ckpt_dir = resolve_checkpoint(checkpoint_path)
    lc = load_checkpoint(ckpt_dir, host=host)
    recipe = lc.recipe
    domain, prepared = load_data(recipe, source=data, host=host, progress=progress)
    _check_data(lc, domain, prepared)
    header = {"checkpoint": str(lc.path), "checkpoint_name": lc.path.name, "step": lc.info.get("step"),
              "run_dir": str(lc.run_dir) if lc.run_dir else None,
              "data_source": resolve_source(recipe, domain, data),
              "recipe_name": (lc.recipe.get("meta") or {}).get("name")}
    notes: list[dict] = []
    if data is not None:
        recorded = resolve_source(recipe, domain, None)
        if header["data_source"] != recorded:
            notes.append({"kind": "data_source", "severity": "info",
                          "message": f"audited on {header['data_source']}, not the training source {recorded}: "
                                     f"'validation' means that source's held-out split"})
    result = audit_model(lc.model, domain, prepared, full_val=full_val, val_size=val_size, geometry=geometry,
                         run_dir=lc.run_dir, header=header, notes=notes, progress=progress, console=console,
                         started=t_start, initial_model=_initial_model(lc, host), split=split)
    if save and lc.run_dir is not None:
        _report_to_loggers(lc.run_dir, result, host)
        try:
            result["saved_to"] = str(save_result(result, audit_path(lc.run_dir)))
        except OSError as exc:
            result["warnings"].append({"kind": "save", "severity": "info",
                                       "message": f"could not save {audit_path(lc.run_dir)}: {exc}"})
    return result


def _report_to_loggers(run_dir: Path, result: dict, host) -> None:
    """The audit's headline to the run's experiment loggers (metrics.jsonl, TensorBoard, MLflow, ...);
    a logger that fails becomes one warning of the audit, never its failure."""
    from wmkit.loggers import log_audit
    from wmkit.plugins import get_host

    def note(message: str) -> None:
        result["warnings"].append({"kind": "logger", "severity": "info", "message": message})

    try:
        log_audit(run_dir, result, host or get_host(), warn=note)
    except (OSError, WmkitError) as exc:
        note(f"could not log the audit to the run's loggers: {exc}")


def audit_model(model, domain, prepared, *, full_val: bool = False, val_size: int | None = None,
                geometry: bool = False, run_dir: str | Path | None = None, header: dict | None = None,
                notes: Sequence[dict] = (), progress: bool = True, console=None,
                started: float | None = None, initial_model=None, split: str = "val") -> dict:
    """Audit a loaded ``model`` on prepared data (what :func:`run_audit` does after loading).

    ``domain`` supplies ``name``, ``vocab`` (``version``, ``pad_id``) and ``label_names``; ``prepared``
    the PreparedData API (``before``, ``after``, ``actions``, ``labels``, ``trajectory``, ``ids``,
    ``train_indices()``, ``val_indices()``). ``run_dir`` (optional) adds the training-log checks.
    ``initial_model`` (the model as the recipe and seed built it, before any step) adds the target drift.
    ``split`` = ``holdout`` audits the rows of the held-out repositories (``data.holdout_repos``) instead
    of the validation split; the linear edit baseline is fit on training rows either way.
    """
    from wmkit.checkpoint import read_index

    t_start = time.perf_counter() if started is None else started
    model.eval()
    t_loaded = time.perf_counter()
    if split not in AUDIT_SPLITS:
        raise DataError(f"--split {split!r}: choose one of {', '.join(AUDIT_SPLITS)}")
    if split == "holdout":
        val_idx = np.asarray(getattr(prepared, "holdout_indices", lambda: [])(), dtype=np.int64)
        if not len(val_idx):
            raise DataError("--split holdout: the data holds out no repository; train with data.holdout_repos = "
                            "[...] (the repos column) or audit --split val")
    else:
        val_idx = np.asarray(prepared.val_indices(), dtype=np.int64)
    train_idx = np.asarray(prepared.train_indices(), dtype=np.int64)
    n = choose_size(len(val_idx), full_val=full_val, val_size=val_size)
    val_rows = sample_rows(val_idx, n)
    train_rows = sample_rows(train_idx, n)

    clock = _Clock()
    result: dict[str, Any] = {
        "format": AUDIT_FORMAT, "wmkit_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": None, "checkpoint_name": None, "step": None, "run_dir": str(run_dir) if run_dir else None,
        "data_source": None, "recipe_name": None, **(header or {}),
        "domain": domain.name, "vocab_version": domain.vocab.version,
        "options": {"full_val": bool(full_val), "val_size": val_size, "geometry": bool(geometry), "split": split},
        "split": split,
        "val_rows_available": int(len(val_idx)), "train_rows_available": int(len(train_idx)),
        "sample_seed": SAMPLE_SEED, "metric_names": METRIC_NAMES,
    }
    warnings: list[dict] = list(notes) + data_warnings(getattr(prepared, "meta", None) or {}, domain.name)

    with task_bar(progress, console) as bar:
        enc = encode(model, prepared, val_rows, loops=geometry, progress=bar, label=f"validation ({n})",
                     parts=ALL_PARTS if geometry else frozenset({"target_before"}))
        enc_train = (encode(model, prepared, train_rows, loops=False, parts=frozenset({"target_before"}),
                            progress=bar, label=f"train sample ({len(train_rows)})") if len(train_rows) >= 2 else None)
        actions = np.asarray(prepared.actions[val_rows], dtype=np.float32)
        perm = derangement(n)
        t0 = time.perf_counter()
        shuffled = predict_with_actions(model, enc.predictor_input, prepared, val_rows[perm],
                                        base=enc.target_before if model.starts_from_target else None)
        shuffle_seconds = time.perf_counter() - t0
        # the linear edit baseline is fit on at least LINEAR_FIT_PAIRS training pairs whatever the audited N,
        # so a model that was warm-started on that many is not compared with a starved baseline
        linear_fit = None
        fit_rows = sample_rows(train_idx, max(len(train_rows), LINEAR_FIT_PAIRS))
        if len(fit_rows) > len(train_rows):
            fit = encode(model, prepared, fit_rows, loops=False, parts=frozenset({"target_before"}), progress=bar,
                         label=f"linear edit fit ({len(fit_rows)})")
            linear_fit = (fit_rows, fit.target_before, fit.target_after)
            shuffle_seconds += fit.seconds
        initial_targets = None
        if initial_model is not None:
            t0 = time.perf_counter()
            initial_targets = encode_targets(initial_model, prepared, val_rows)
            shuffle_seconds += time.perf_counter() - t0

    t_metrics = time.perf_counter()
    val = summary_metrics(online_before=enc.online_before, target_before=enc.target_before,
                          target_after=enc.target_after, pred=enc.pred, clock=clock)
    result.update(val)
    result.update(_baselines(enc, enc_train, prepared, domain, clock, linear_fit))
    if initial_targets is not None:
        result["target_drift"] = baselines.target_drift(enc.target_after, initial_targets)
    result["knn_curve"] = knn_curve(enc.pred, enc.target_after, shuffled, clock)
    result["action_sensitivity"] = action_sensitivity(
        true={**val, "pred": enc.pred}, shuffled_pred=shuffled, target_after=enc.target_after,
        online_before=enc.online_before, actions=actions, perm=perm, clock=clock)
    if enc_train is not None:
        train = summary_metrics(online_before=enc_train.online_before, target_before=enc_train.target_before,
                                target_after=enc_train.target_after, pred=enc_train.pred, clock=clock, full=False)
        result["train_gap"] = train_val_gap(train, val)
        if len(train_rows) < n:
            result["train_gap"]["note"] = (f"only {len(train_rows)} training rows: the train gallery is smaller, "
                                           f"so its KNN is easier")
            result["train_gap"]["memorising"] = False

    t_dup = time.perf_counter()
    ids = getattr(prepared, "ids", None)
    if len(train_idx):
        result["near_duplicates"] = memorisation.near_duplicates(
            np.asarray(prepared.before[val_rows]), np.asarray(prepared.after[val_rows]),
            np.asarray(prepared.before[train_idx]), np.asarray(prepared.after[train_idx]), domain.vocab.pad_id,
            val_ids=[ids[i] for i in val_rows] if ids is not None else None,
            train_ids=[ids[i] for i in train_idx] if ids is not None else None)
    dup_seconds = time.perf_counter() - t_dup

    if run_dir is not None:
        index = read_index(Path(run_dir))
        if index.get("best"):
            result["selection"] = {"best": index["best"], "criterion": index.get("criterion", "delta_cos"),
                                   "value": index.get("best_metric")}
        step = (header or {}).get("step")
        log = memorisation.read_metrics_log(Path(run_dir) / "metrics.jsonl", up_to_step=step)
        warnings += memorisation.training_warnings(log)
        saved = [s for s in read_index(Path(run_dir)).get("steps", []) if step is None or s <= step]
        result["training_trend"] = memorisation.knn_trend(log, saved)
        if log["bad_lines"]:
            warnings.append({"kind": "metrics_log", "severity": "info",
                             "message": f"{log['bad_lines']} unreadable line(s) in metrics.jsonl were skipped"})

    geo_encode = 0.0
    if geometry:
        result["geometry"] = _geometry(model, prepared, domain, enc, train_idx, progress, console)
        result["geometry"]["sample_size"] = n
        geo_encode = result["geometry"].get("encode_s") or 0.0

    result["warnings"] = collect_warnings(result) + warnings
    result.update(verdict.judge(result))
    t_end = time.perf_counter()
    encode_s = enc.seconds + (enc_train.seconds if enc_train else 0.0) + shuffle_seconds + geo_encode
    result["timing"] = {"total_s": t_end - t_start, "load_s": t_loaded - t_start, "encode_s": encode_s,
                        "search_s": clock.search, "near_duplicates_s": dup_seconds,
                        "metrics_s": (t_end - t_metrics) - clock.search - dup_seconds - geo_encode,
                        "encoded_pairs": int(len(val_rows) + (len(train_rows) if enc_train else 0)
                                             + (result.get("geometry", {}).get("encoded_pairs") or 0))}
    return to_jsonable(result)


def _baselines(enc: Encoded, enc_train: Encoded | None, prepared, domain, clock: _Clock,
               linear_fit: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict:
    """Copy, online copy, the distractor gallery and the linear edit model, beside the model's numbers.
    ``linear_fit``: ``(rows, target_before, target_after)`` of the training pairs the linear model is
    fit on, when they are more than the train sample ``enc_train``."""
    from wmkit.edits import token_bags

    out: dict[str, Any] = {}
    if enc.target_before is None:
        return out
    t0 = time.perf_counter()
    out.update(baselines.copy_baselines(pred=enc.pred, online_before=enc.online_before,
                                        target_before=enc.target_before, target_after=enc.target_after, ks=KNN_KS))
    out["distractor_gallery"] = baselines.distractor_gallery(enc.pred, enc.target_before, enc.target_after)
    if enc_train is not None and enc_train.target_before is not None and len(enc_train.rows) >= MIN_VAL_SIZE:
        vocab = domain.vocab

        def bags(rows):
            return token_bags(np.asarray(prepared.before[rows]), np.asarray(prepared.after[rows]),
                              vocab.pad_id, vocab.size)

        fit_rows, fit_before, fit_after = linear_fit or (enc_train.rows, enc_train.target_before,
                                                         enc_train.target_after)
        linear = baselines.linear_edit_baseline(
            train_features=bags(fit_rows), train_target_before=fit_before,
            train_target_after=fit_after, features=bags(enc.rows), target_before=enc.target_before,
            target_after=enc.target_after, pred=enc.pred, ks=KNN_KS)
        linear.pop("linear_prediction")
        out.update(linear)
    clock.search += time.perf_counter() - t0
    return out


def _geometry(model, prepared, domain, enc: Encoded, train_idx: np.ndarray, progress: bool, console) -> dict:
    """Geometry probes: validation sample for everything but trajectories, which read whole
    trajectories of successive training-split edits (the validation split is a 10% sample of commits,
    so its edits of one file are not successive)."""
    from wmkit.audit import geometry as geo

    labels = {name: np.asarray(values)[enc.rows] for name, values in (getattr(prepared, "labels", None) or {}).items()}
    traj_rows = np.zeros(0, dtype=np.int64)
    trajectory = getattr(prepared, "trajectory", None)
    if trajectory is not None:
        traj_rows = geo.select_trajectory_rows(np.asarray(trajectory), train_idx,
                                               max_rows=min(GEOMETRY_TRAJECTORY_ROWS, len(enc.rows)))
    traj_deltas = traj_ids = None
    encode_s = 0.0
    if traj_rows.size:
        with task_bar(progress, console) as bar:
            t = encode(model, prepared, traj_rows, loops=False, parts=frozenset({"online_after"}), progress=bar,
                       label=f"trajectories ({traj_rows.size})")
        traj_deltas = t.online_after - t.online_before
        traj_ids = np.asarray(trajectory)[traj_rows]
        encode_s = t.seconds
    out = geo.geometry_probes(online_before=enc.online_before, online_after=enc.online_after,
                              target_before=enc.target_before, loops_before=enc.loops_before,
                              loops_after=enc.loops_after, labels=labels,
                              label_names=getattr(domain, "label_names", None),
                              trajectory_deltas=traj_deltas, trajectory_ids=traj_ids)
    if traj_rows.size:
        out["trajectories"]["source"] = "training split (successive edits of one file)"
    else:
        out["trajectories"] = {"note": "no trajectory with 2+ edits in the data"}
    out["encode_s"] = encode_s
    out["encoded_pairs"] = int(traj_rows.size)
    return out
