"""The retrieval bench end to end: load the checkpoint and its data, sample, embed, rank, score, time.

Returns the JSON-ready result documented in docs/retrieval.md; the protocol is in :mod:`wmkit.bench.retrieval`.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wmkit import __version__
from wmkit.bench.baselines import ALWAYS_RUN, EditEmbedder, EditPairs
from wmkit.bench.retrieval.embedder import WmkitEmbedder
from wmkit.bench.retrieval.latency import (DEFAULT_LATENCY_QUERIES, FULL_LENGTH_REPS, _median_ms, _time_real_queries,
                                           speed_ratios, time_full_length)
from wmkit.bench.retrieval.relevance import (ACTION_CHOICES, CRITERIA, Annotations, parse_criterion, rank_gallery,
                                             relevance_matrix, score_ranking, select_actions)
from wmkit.bench.retrieval.sampling import (_id_list, choose_sizes, content_duplicates, sample_queries_gallery,
                                            training_overlap)
from wmkit.encode import EDIT_EMBEDDINGS as EMBEDDINGS
from wmkit.errors import CheckpointError, DataError, RecipeError, WmkitError
from wmkit.progress import task_bar

RESULT_FORMAT = "wmkit-retrieval/1"


def _recorded_data(run_dir: Path | None) -> dict | None:
    if run_dir is None or not (Path(run_dir) / "config.json").exists():
        return None
    try:
        return json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get("data")
    except (OSError, json.JSONDecodeError):
        return None


def _labels_of(prepared, rows: np.ndarray) -> dict[str, np.ndarray]:
    labels = getattr(prepared, "labels", None) or {}
    return {name: np.asarray(values)[rows] for name, values in labels.items()}


def _texts(prepared, rows: np.ndarray, progress=None) -> tuple[list[str], list[str]]:
    before, after = [], []
    for i in rows:
        b, a = prepared.texts(int(i))
        before.append(b or "")
        after.append(a or "")
        if progress:
            progress(1)
    return before, after


def _resolve_embedders(baselines: Sequence[str], *, trust_remote_code: bool) -> list[EditEmbedder]:
    """Load every ``--baseline`` (lexical/random are always run; duplicates are loaded once)."""
    from wmkit.bench.baselines import load_baseline

    out: list[EditEmbedder] = []
    seen: set[str] = set()
    for spec in baselines:
        if spec.lower() in ALWAYS_RUN:
            continue
        embedder = load_baseline(spec, trust_remote_code=trust_remote_code)
        if embedder.name in seen:
            continue
        seen.add(embedder.name)
        out.append(embedder)
    return out


def _model_entry(embedder: EditEmbedder) -> dict:
    return {"name": embedder.name, "kind": embedder.kind, "params": embedder.parameter_count(),
            "max_tokens": embedder.max_tokens, "speed_target": embedder.speed_target,
            "cpu_ms": None, "cpu_ms_full": None, "tokenize_ms": None, "latency_samples": 0,
            "tokens_median": None, "criteria": {}, "identical_inputs": None, "embed_s": None,
            "details": embedder.describe()}




def run_retrieval_bench(checkpoint: str | Path, *, queries: int = 1000, gallery: int = 5000,
                        baselines: Sequence[str] = (), actions: str = "15d", embedding: str = "target_online",
                        latency_queries: int = DEFAULT_LATENCY_QUERIES, latency_only: bool = False,
                        random_arch: str | Sequence[str] | None = None, seed: int = 42, progress: bool = True,
                        data: str | None = None, trust_remote_code: bool = False,
                        full_length_reps: int = FULL_LENGTH_REPS, console=None, host=None,
                        split: str = "val") -> dict:
    """Run the retrieval head-to-head on ``checkpoint`` (a run or checkpoint directory).

    ``split = "holdout"`` draws queries and gallery from the repositories the recipe held out
    (``data.holdout_repos``) instead of the validation split.

    ``baselines``: ``--baseline`` specs (aliases ``minilm``, ``unixcoder``, ``codebert``,
    ``codet5p``, local model folders, hub ids); the lexical and random baselines always run.
    ``random_arch``: one or more :data:`wmkit.bench.baselines.RANDOM_ARCHS` names, timed only.
    ``latency_only``: skip sampling and retrieval; time every model at full length.
    ``data``: another source than the checkpoint's recorded one (its validation split is used).
    Returns a JSON-ready dict (keys documented in ``docs/retrieval.md``).
    """
    from wmkit.bench.baselines import LexicalDiffEmbedder, RandomEmbedder, random_arch_embedder
    from wmkit.checkpoint import load_checkpoint

    if embedding not in EMBEDDINGS:
        raise RecipeError(f"--embedding {embedding}: choose one of {', '.join(EMBEDDINGS)}")
    if actions not in ACTION_CHOICES:
        raise RecipeError(f"--actions {actions}: choose one of {', '.join(ACTION_CHOICES)}")
    if latency_queries < 0 or full_length_reps < 0:
        raise RecipeError("--latency-queries and --full-length-reps must be ≥ 0")
    arches = [random_arch] if isinstance(random_arch, str) else list(random_arch or [])
    t_start = time.perf_counter()

    lc = load_checkpoint(checkpoint, host=host)
    info = lc.info
    seq_len = int(lc.recipe["data"]["max_len"])
    wmkit = WmkitEmbedder(lc.model, embedding=embedding, vocab_size=int(info["vocab_size"]), pad_id=int(info["pad_id"]),
                          sequence_length=seq_len)
    extra = _resolve_embedders(baselines, trust_remote_code=trust_remote_code)
    timed_only = [random_arch_embedder(a, seed=seed) for a in arches]
    embedders: list[EditEmbedder] = [wmkit, *extra]
    if not latency_only:
        embedders += [LexicalDiffEmbedder(), RandomEmbedder(seed=seed)]

    result: dict[str, Any] = {
        "format": RESULT_FORMAT, "wmkit_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(lc.path), "step": info.get("step"), "domain": info.get("domain"),
        "run_dir": str(lc.run_dir) if lc.run_dir else None,
        "recipe_name": (lc.recipe.get("meta") or {}).get("name"),
        "latency_only": bool(latency_only), "seed": seed, "embedding": embedding,
        "embedding_formula": EMBEDDINGS[embedding], "criteria_order": list(CRITERIA),
        "latency": {"threads": 1, "batch": 1, "sides": 2, "statistic": "median", "warmup": 2,
                    "tokenization": "excluded (reported as tokenize_ms)",
                    "queries": 0, "full_length_reps": int(full_length_reps), "full_length_interleaved": True},
        "notes": [],
    }

    latency_pairs: EditPairs | None = None
    loaded = None if latency_only else _load_data(lc, data, host, progress)  # before any live display
    with task_bar(progress, console) as bar:
        if loaded is not None:
            latency_pairs = _retrieval(result, lc, loaded, embedders, queries=queries, gallery=gallery,
                                       actions=actions, seed=seed, latency_queries=latency_queries, bar=bar,
                                       split=split)
            wmkit.max_tokens = int(result["sequence_length"])
        else:
            result["models"] = {e.name: _model_entry(e) for e in embedders}
            result["sequence_length"] = seq_len
        for e in timed_only:
            result["models"][e.name] = _model_entry(e)
        result["latency"]["queries"] = 0 if latency_pairs is None else len(latency_pairs)
        if latency_pairs is not None and len(latency_pairs):
            timed = [e for e in embedders if e.kind != "random"]
            task = bar.add_task(f"timing {len(latency_pairs)} queries (1 thread, batch 1)", total=len(timed))
            for e in timed:
                _time_real_queries(result["models"][e.name], e, latency_pairs)
                bar.advance(task, 1)
        full = [e for e in embedders + timed_only if e.kind not in ("random", "lexical")]
        if full_length_reps > 0 and full:
            task = bar.add_task(f"timing {len(full)} models at full length (interleaved)", total=full_length_reps)
            for name, seconds in time_full_length(full, full_length_reps, seed=seed,
                                                  advance=lambda n: bar.advance(task, n)).items():
                result["models"][name]["cpu_ms_full"] = _median_ms(seconds)
    for entry in result["models"].values():
        if entry["cpu_ms"] is None and entry["cpu_ms_full"] is not None:
            entry["cpu_ms"] = entry["cpu_ms_full"]
            entry["latency_inputs"] = "full-length random token ids"
        else:
            entry["latency_inputs"] = "real queries" if entry["cpu_ms"] is not None else None
    result["speed_ratios"] = speed_ratios(result["models"])
    result["seconds"] = time.perf_counter() - t_start
    return result


@dataclass
class _Loaded:
    """The benchmark's data and the training split it is checked against."""

    domain: Any
    prepared: Any
    #: prepared data whose training split the checkpoint saw (None: unreadable here, see ``note``)
    reference: Any
    source: str
    training_source: str
    note: str | None = None


def _load_data(lc, data: str | None, host, progress: bool) -> _Loaded:
    """Prepared data of ``data`` (default: the checkpoint's recorded source), and the training reference.

    The recorded source is the run's ``config.json`` ``data.source`` when there is one (what
    training actually read), else the checkpoint recipe's ``data.source``. When ``data`` names
    another source, the recorded one is prepared too (from the cache, normally), so the benchmark
    rows are checked against the rows the checkpoint really trained on.
    """
    from wmkit.checkpoint import check_vocab
    from wmkit.runtime import load_data, resolve_source

    recipe = lc.recipe
    recorded = (_recorded_data(lc.run_dir) or {}).get("source")
    domain, prepared = load_data(recipe, source=data or recorded, host=host, progress=progress)
    check_vocab(lc.info, domain)
    source = resolve_source(recipe, domain, data or recorded)
    training_source = resolve_source(recipe, domain, recorded)
    if source == training_source:
        return _Loaded(domain, prepared, prepared, source, training_source)
    try:
        _, reference = load_data(recipe, source=training_source, host=host, progress=progress)
    except WmkitError as exc:
        return _Loaded(domain, prepared, None, source, training_source,
                       note=f"the checkpoint's training source could not be read here ({exc}); overlap is checked "
                            f"against {source}'s own training split only")
    return _Loaded(domain, prepared, reference, source, training_source)


def _retrieval(result: dict, lc, loaded: _Loaded, embedders: list[EditEmbedder], *, queries: int, gallery: int,
               actions: str, seed: int, latency_queries: int, bar, split: str = "val") -> EditPairs:
    """Sampling, split check, embedding, ranking and scoring; fills ``result``; returns latency pairs."""
    domain, prepared, reference = loaded.domain, loaded.prepared, loaded.reference
    source, recorded_source = loaded.source, loaded.training_source
    data = source != recorded_source  # benchmarking another source than the training one
    before_all, after_all = np.asarray(prepared.before), np.asarray(prepared.after)
    acts_all = np.asarray(prepared.actions)
    want = lc.info.get("action_dim")
    if want is not None and int(want) != acts_all.shape[1]:
        raise CheckpointError(f"{lc.path}: checkpoint expects {want}-D actions but the data has {acts_all.shape[1]}-D "
                              f"actions; pass data of the checkpoint's domain")
    result["sequence_length"] = int(before_all.shape[1])
    result["data_source"] = source
    notes = result["notes"]
    if data:
        notes.append(f"benchmarked on {source}, not the training source {recorded_source}: 'held out' means that "
                     f"source's validation split, minus any row the checkpoint trained on")
    if loaded.note:
        notes.append(loaded.note)
    ref = reference if reference is not None else prepared
    if split == "holdout":
        val_idx = np.asarray(getattr(prepared, "holdout_indices", lambda: [])(), dtype=np.int64)
        if not len(val_idx):
            raise DataError("--split holdout: the data holds out no repository; train with data.holdout_repos")
        notes.append("queries and gallery come from the held-out repositories (data.holdout_repos)")
    else:
        val_idx = np.asarray(prepared.val_indices(), dtype=np.int64)
    result["split"] = split
    ref_train = np.asarray(ref.train_indices(), dtype=np.int64)
    ids, ref_ids = getattr(prepared, "ids", None), getattr(ref, "ids", None)
    if ids is None or ref_ids is None:
        raise DataError("prepared data carries no row ids; cannot check queries and gallery against training rows")
    train_ids = set(_id_list(ref_ids, ref_train))
    val_ids = _id_list(ids, val_idx)
    pool = np.array([r for r, x in zip(val_idx.tolist(), val_ids) if x not in train_ids], dtype=np.int64)
    excluded = int(len(val_idx) - len(pool))
    if excluded:
        notes.append(f"{excluded} validation rows share a row id with training rows and were left out of the pool")
    try:
        q, g, note = choose_sizes(len(pool), queries, gallery, split)
    except DataError as exc:
        hint = "" if data else "; or pass --data SOURCE to benchmark on another source's validation split"
        raise DataError(f"{source}: {exc}{hint}") from None
    if note:
        notes.append(note)
    q_rows, g_rows = sample_queries_gallery(pool, q, g, seed)
    bench_rows = np.concatenate([q_rows, g_rows])
    overlap = training_overlap(_id_list(ids, bench_rows), train_ids)
    qg_overlap = len(set(_id_list(ids, q_rows)) & set(_id_list(ids, g_rows)))
    recorded = _recorded_data(lc.run_dir)
    ref_meta = getattr(ref, "meta", None) or {}
    matches = None
    if recorded and recorded.get("cache_key") and ref_meta.get("cache_key") and reference is not None:
        matches = recorded["cache_key"] == ref_meta["cache_key"]
        if not matches:
            notes.append(f"the training data prepared now (cache key {ref_meta['cache_key'][:12]}…) differs from the "
                         f"training run's ({recorded['cache_key'][:12]}…): the split check uses the data prepared now")
    ref_before, ref_after = np.asarray(ref.before), np.asarray(ref.after)
    result["split_check"] = {
        "validation_rows": int(len(val_idx)), "training_rows": int(len(ref_train)),
        "training_source": recorded_source if reference is not None else source,
        "pool_rows": int(len(pool)), "excluded_shared_ids": excluded,
        "overlap_with_training_rows": overlap, "query_gallery_overlap": qg_overlap,
        "content_duplicates_of_training": content_duplicates(before_all[bench_rows], after_all[bench_rows],
                                                             ref_before[ref_train], ref_after[ref_train])
        if ref_before.shape[1:] == before_all.shape[1:] else None,
        "data_matches_training_run": matches,
    }
    if overlap or qg_overlap:
        raise DataError(f"sampling bug: {overlap} benchmark rows overlap training rows and {qg_overlap} queries are "
                        f"also gallery rows; report this")
    result.update(queries=int(q), gallery=int(g), requested={"queries": int(queries), "gallery": int(gallery)})

    selected, names, label = select_actions(acts_all[bench_rows], actions, getattr(domain, "action_names", None))
    result["actions"] = {"mode": actions, "dims": int(selected.shape[1]), "label": label, "names": names}
    labels = _labels_of(prepared, bench_rows)
    criteria = []
    for c in CRITERIA:
        kind, arg = parse_criterion(c)
        if kind == "label" and arg not in labels:
            notes.append(f"{c} skipped: the {lc.info.get('domain')} domain has no {arg!r} labels")
            continue
        criteria.append(c)
    ann_q = Annotations({k: v[:q] for k, v in labels.items()}, selected[:q])
    ann_g = Annotations({k: v[q:] for k, v in labels.items()}, selected[q:])
    relevance = {c: relevance_matrix(c, ann_q, ann_g) for c in criteria}
    result["criteria"] = {c: {"relevant_share": float(r.mean()), "queries_with_relevant": float(r.any(axis=1).mean())}
                          for c, r in relevance.items()}

    task = bar.add_task(f"reading texts ({len(bench_rows)} pairs)", total=len(bench_rows))
    before_text, after_text = _texts(prepared, bench_rows, progress=lambda n: bar.advance(task, n))
    pairs = EditPairs(before_text, after_text, before_all[bench_rows], after_all[bench_rows])

    result["models"] = {}
    for e in embedders:
        entry = _model_entry(e)
        task = bar.add_task(f"embedding with {e.name} ({len(pairs)} pairs)", total=len(pairs))
        t0 = time.perf_counter()
        vecs = e.embed(pairs, progress=lambda n, t=task: bar.advance(t, n))
        entry["embed_s"] = time.perf_counter() - t0
        entry["details"] = e.describe()
        same = e.identical_inputs(pairs)
        entry["identical_inputs"] = None if same is None else float(np.mean(same))
        ranking = rank_gallery(vecs[:q], vecs[q:])
        entry["criteria"] = {c: score_ranking(ranking, relevance[c]) for c in criteria}
        result["models"][e.name] = entry
    n_lat = min(int(latency_queries), q)
    return pairs.take(range(n_lat))


def write_result(result: dict, path: str | Path) -> Path:
    """Write the result as JSON (indented) to ``path``."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def render_retrieval(result: dict, console=None) -> None:
    """Print ``result`` as rich tables (see :func:`wmkit.bench.report.render_retrieval`)."""
    from wmkit.bench.report import render_retrieval as _render

    _render(result, console=console)
