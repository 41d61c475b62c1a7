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

The steps live in their own modules: :mod:`~wmkit.audit.sampling` (step 2),
:mod:`~wmkit.audit.encoding` (3), :mod:`~wmkit.audit.measures` and
:mod:`~wmkit.audit.warning_rules` (4), :mod:`~wmkit.audit.results` (5); this module runs them.
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wmkit import __version__
from wmkit.audit import baselines, memorisation, verdict
from wmkit.errors import CheckpointError, DataError, WmkitError
from wmkit.linear_edit import LINEAR_FIT_PAIRS
from wmkit.progress import task_bar

# the names below were defined here before the split; they stay importable from wmkit.audit.core
from wmkit.audit.encoding import ALL_PARTS, Encoded, encode, encode_targets, predict_with_actions
from wmkit.audit.measures import (CURVE_KS, KNN_KS, _Clock, action_sensitivity, knn_block, knn_curve,
                                  summary_metrics)
from wmkit.audit.results import AUDIT_FILE, AUDIT_FORMAT, audit_path, load_result, save_result, to_jsonable
from wmkit.audit.sampling import (ACTION_SHUFFLE_SEED, DEFAULT_VAL_SIZE, FULL_VAL_SIZE, MIN_VAL_SIZE, SAMPLE_SEED,
                                  choose_size, derangement, sample_rows)
from wmkit.audit.warning_rules import DROPPED_WARN_FRACTION, collect_warnings, data_warnings, train_val_gap

GEOMETRY_TRAJECTORY_ROWS = 2000
"""At most this many rows (whole trajectories of 2+ edits; and at most the audit's N) feed the
trajectory probes."""
#: which rows an audit measures: the validation split, or the held-out repositories
AUDIT_SPLITS = ("val", "holdout")

#: one line per reported metric: what exactly it is (defect D9 (docs/reference.md#d9): name every form)
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
    n = choose_size(len(val_idx), full_val=full_val, val_size=val_size, split=split)
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
        # and on at least as many as the model's own warm start read, so no model is compared with a
        # baseline that saw less of the training data than it did
        linear_fit = None
        warm_start_pairs = getattr(getattr(model, "action_encoder", None), "warm_start_pairs", 0)
        fit_rows = sample_rows(train_idx, max(len(train_rows), LINEAR_FIT_PAIRS, int(warm_start_pairs)))
        if len(fit_rows) > len(train_rows):
            t0 = time.perf_counter()
            linear_fit = _linear_fit_targets(model, prepared, fit_rows, enc_train, bar)
            shuffle_seconds += time.perf_counter() - t0
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


def _linear_fit_targets(model, prepared, fit_rows: np.ndarray, enc_train, bar):
    """``(fit_rows, target(before), target(after))`` for the linear edit fit: the training sample's
    readouts where it already holds the row; only the other rows are encoded."""
    have = {int(r): i for i, r in enumerate(enc_train.rows)} if enc_train is not None else {}
    missing = np.asarray([r for r in fit_rows if int(r) not in have], dtype=np.int64)
    new = encode(model, prepared, missing, loops=False, parts=frozenset({"target_before"}), progress=bar,
                 label=f"linear edit fit ({len(missing)} more training pairs)") if len(missing) else None
    dim = (new or enc_train).target_after.shape[1]
    before = np.empty((len(fit_rows), dim), dtype=np.float32)
    after = np.empty((len(fit_rows), dim), dtype=np.float32)
    fresh = 0
    for i, r in enumerate(fit_rows):
        j = have.get(int(r))
        source, k = (new, fresh) if j is None else (enc_train, j)
        before[i], after[i] = source.target_before[k], source.target_after[k]
        fresh += j is None
    return fit_rows, before, after


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
    queries = {"model": enc.pred, "copy": enc.target_before}
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
        queries["linear_edit"] = linear.pop("linear_prediction")
        out.update(linear)
    out["identical_states"] = baselines.identical_states(np.asarray(prepared.after[enc.rows]), enc.target_after,
                                                         queries)
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
