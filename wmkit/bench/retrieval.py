"""``wmkit bench retrieval``: edit retrieval against foundation models, with CPU latency (reference §6).

Protocol (what this module does, in order):

1. **Samples (defect D5).** Queries and gallery come only from the validation split of the
   checkpoint's recorded data source (the run's ``config.json`` ``data.source``, else the
   recipe's; the same preparation, hence the same commit-hash split, as training). Validation rows
   whose id is also a training row id are dropped from the pool (with ``--data`` another source
   is benchmarked and the recorded one is prepared too, so rows the checkpoint trained on are
   dropped even if the other source calls them validation). The pool is shuffled with ``seed``;
   the first ``queries`` rows are queries, the next ``gallery`` the gallery (disjoint). The drawn
   rows are checked against every training row id and the overlap is reported (it must be 0:
   anything else stops the benchmark). Exact token duplicates of training pairs (reverts,
   cherry-picks) are counted and reported, not removed.
2. **Edit embeddings.** wmkit: ``target(after) − online(before)`` (the paper's form, default) or
   ``online(after) − online(before)`` (the reference's TAP scripts). Baselines: see
   :mod:`wmkit.bench.baselines` (2048-character cut, ≤512 tokens, mean pooling, after − before).
3. **Ranking.** All edit vectors L2-normalised; each query's top 10 gallery items by cosine through
   ``faiss.IndexFlatIP``.
4. **Relevance** (over the top 10 only): ``by_edit_type`` / ``by_joint`` — same label (a missing
   label, −1, is never relevant); ``cos@0.9`` / ``cos@0.95`` — cosine of the raw action vectors
   strictly above the threshold, on the 15-D vector or its first 7 dimensions (reference §2: for
   the code domain dims 0–6 of the 15-D vector *are* the 7-D vector, so ``--actions 7d`` slices).
5. **Metrics.** MRR@10 (1/rank of the first relevant item in the top 10, 0 if none), R@1, R@5.
6. **Latency.** One thread (``torch.set_num_threads(1)``), batch 1, both sides of a query (the
   whole edit embedding), tokenization excluded (timed and reported separately), two untimed
   warm-up calls; ``cpu_ms`` is the median over ``latency_queries`` real queries; ``cpu_ms_full`` the
   median over ``FULL_LENGTH_REPS`` inputs at each model's full length (512 tokens per side for
   the text encoders, ``data.max_len`` for wmkit), timed round-robin across models so that load
   changes hit every model alike; the basis of the printed speed ratios.

Sizes: when the validation pool is smaller than ``queries + gallery`` the gallery shrinks first
(a note is printed); if fewer than :data:`MIN_GALLERY` gallery rows would be left, both shrink in
proportion; fewer than ``MIN_QUERIES + MIN_GALLERY`` validation rows is an error.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from wmkit import __version__
from wmkit.bench.baselines import ALWAYS_RUN, EditEmbedder, EditPairs, LatencyItem
from wmkit.encode import EDIT_EMBEDDINGS as EMBEDDINGS
from wmkit.encode import edit_embedding, edit_of, edit_parameter_count
from wmkit.errors import CheckpointError, DataError, RecipeError, WmkitError, reports_errors
from wmkit.progress import task_bar

RESULT_FORMAT = "wmkit-retrieval/1"
#: the four relevance criteria of reference §6, in table order
CRITERIA = ("by_edit_type", "by_joint", "cos@0.9", "cos@0.95")
ACTION_CHOICES = ("15d", "7d", "native")
MIN_QUERIES = 10
#: the gallery must fill a top-10 list
MIN_GALLERY = 10
DEFAULT_LATENCY_QUERIES = 20
FULL_LENGTH_REPS = 5
#: pairs per forward pass when wmkit embeds the benchmark set
WMKIT_CHUNK = 64
DEPTH = 10


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------


def choose_sizes(available: int, queries: int, gallery: int) -> tuple[int, int, str | None]:
    """``(queries, gallery, note)`` that fit ``available`` held-out rows (see the module docstring)."""
    if queries < 1 or gallery < 1:
        raise RecipeError(f"--queries {queries} / --gallery {gallery}: both must be positive")
    if available < MIN_QUERIES + MIN_GALLERY:
        raise DataError(f"the validation split has only {available} usable rows; the retrieval benchmark needs at "
                        f"least {MIN_QUERIES + MIN_GALLERY} ({MIN_QUERIES} queries + {MIN_GALLERY} gallery); use "
                        f"more data or raise data.val_percent")
    if queries + gallery <= available:
        return queries, gallery, None
    if available - queries >= MIN_GALLERY:
        g = available - queries
        return queries, g, (f"the validation split has {available} rows: gallery shrunk from {gallery} to {g} "
                            f"({queries} queries kept)")
    q = max(MIN_QUERIES, min(queries, available * queries // (queries + gallery)))
    g = available - q
    if g < MIN_GALLERY:
        q, g = available - MIN_GALLERY, MIN_GALLERY
    return q, g, (f"the validation split has {available} rows: queries shrunk from {queries} to {q} and gallery "
                  f"from {gallery} to {g}")


def sample_queries_gallery(pool: np.ndarray, queries: int, gallery: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``pool`` (row indices) with ``seed``; first ``queries`` → queries, next ``gallery``."""
    pool = np.asarray(pool, dtype=np.int64)
    if queries + gallery > len(pool):
        raise ValueError(f"{queries} + {gallery} rows asked for from a pool of {len(pool)}")
    order = np.random.default_rng(seed).permutation(len(pool))
    return pool[order[:queries]], pool[order[queries:queries + gallery]]


def _id_list(ids: Any, rows: np.ndarray) -> list:
    arr = np.asarray(ids)
    return arr[np.asarray(rows, dtype=np.int64)].tolist()


def training_overlap(bench_ids: Iterable, training_ids: Iterable) -> int:
    """How many of ``bench_ids`` are also training row ids."""
    train = set(training_ids)
    return int(sum(1 for x in bench_ids if x in train))


def _pair_digest(before: np.ndarray, after: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=12)
    h.update(np.ascontiguousarray(before).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(after).tobytes())
    return h.digest()


def content_duplicates(before: np.ndarray, after: np.ndarray, train_before: np.ndarray, train_after: np.ndarray) -> int:
    """How many pairs ``(before[i], after[i])`` have exactly the tokens of some training pair.

    Pairs whose two sides are identical after the cut to ``max_len`` are not counted: their tokens
    say nothing about the edit (many unrelated commits share a file's unchanged head).
    """
    train = {_pair_digest(b, a) for b, a in zip(train_before, train_after) if not np.array_equal(b, a)}
    return int(sum(1 for b, a in zip(before, after) if not np.array_equal(b, a) and _pair_digest(b, a) in train))


# ---------------------------------------------------------------------------------------------
# relevance, ranking, metrics
# ---------------------------------------------------------------------------------------------


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
    """Bool [Q, G]: whether gallery edit g is relevant to query q under ``criterion`` (reference §6).

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
    """MRR@10, R@1 and R@5 of a ranking against a relevance matrix (reference §6)."""
    from wmkit.metrics import mrr_at_10, recall_at_k

    return {"mrr": mrr_at_10(ranking, relevant), "r_at_1": recall_at_k(ranking, relevant, 1),
            "r_at_5": recall_at_k(ranking, relevant, 5)}


def select_actions(actions: np.ndarray, mode: str, names: Sequence[str] | None = None
                   ) -> tuple[np.ndarray, list[str], str]:
    """The action vectors relevance uses: ``(actions, names, label)`` for ``--actions mode``.

    ``15d``: the checkpoint's 15-D vectors as they are; ``7d``: 7-D vectors as they are, or the
    first 7 dims of 15-D ones (reference §2: those *are* the 7-D vector); ``native``: whatever the
    checkpoint's domain produces (other domains).
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


# ---------------------------------------------------------------------------------------------
# the wmkit edit embedder
# ---------------------------------------------------------------------------------------------


class WmkitEmbedder(EditEmbedder):
    """A checkpoint's edit embedding: ``target(after) − online(before)`` or ``online − online``.

    Reads the domain's own tokens (``[N, L]``, every state padded to ``L`` = ``data.max_len``);
    the encoders run at that full length whatever the real token count.
    """

    kind = "wmkit"

    def __init__(self, model, *, embedding: str = "target_online", vocab_size: int, pad_id: int,
                 sequence_length: int, name: str = "wmkit", chunk: int = WMKIT_CHUNK):
        if embedding not in EMBEDDINGS:
            raise RecipeError(f"--embedding {embedding}: choose one of {', '.join(EMBEDDINGS)}")
        self.name = name
        self.model = model.eval()
        self.embedding = embedding
        self.vocab_size = int(vocab_size)
        self.pad_id = int(pad_id)
        self.max_tokens = int(sequence_length)
        self.chunk = chunk

    def _edit(self, before, after):
        return edit_of(self.model, before, after, self.embedding)

    def parameter_count(self) -> int:
        return edit_parameter_count(self.model, self.embedding)

    def embed(self, pairs: EditPairs, *, progress=None) -> np.ndarray:
        return edit_embedding(self.model, pairs.before_tokens, pairs.after_tokens, embedding=self.embedding,
                              chunk=self.chunk, progress=progress or None)

    def identical_inputs(self, pairs: EditPairs) -> np.ndarray:
        return np.all(np.asarray(pairs.before_tokens) == np.asarray(pairs.after_tokens), axis=1)

    def latency_items(self, pairs: EditPairs) -> list[LatencyItem]:
        import torch

        items = []
        for i in range(len(pairs)):
            b, a = pairs.before_tokens[i:i + 1], pairs.after_tokens[i:i + 1]
            items.append(LatencyItem(payload=(torch.from_numpy(np.asarray(b)).long(), torch.from_numpy(np.asarray(a)).long()),
                                     tokens=(int((b != self.pad_id).sum()), int((a != self.pad_id).sum()))))
        return items

    def full_length_items(self, count: int, seed: int = 0) -> list[LatencyItem]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        items = []
        for _ in range(count):
            sides = []
            for _side in range(2):
                ids = torch.randint(0, self.vocab_size - 1, (1, self.max_tokens), generator=gen)
                ids = torch.where(ids >= self.pad_id, ids + 1, ids)  # any token but PAD
                sides.append(ids)
            items.append(LatencyItem(payload=tuple(sides), tokens=(self.max_tokens, self.max_tokens)))
        return items

    def run_item(self, item: LatencyItem) -> None:
        import torch

        with torch.inference_mode():
            self._edit(*item.payload)

    def describe(self) -> dict:
        return {"kind": self.kind, "embedding": self.embedding, "formula": EMBEDDINGS[self.embedding],
                "sequence_length": self.max_tokens, "max_tokens": self.max_tokens,
                "note": "every state is padded to sequence_length; the encoders always run at that length"}


# ---------------------------------------------------------------------------------------------
# latency
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def single_thread():
    """``torch.set_num_threads(1)`` for the block, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_items(embedder: EditEmbedder, items: Sequence[LatencyItem], *, warmup: int = 2) -> list[float]:
    """Seconds of :meth:`EditEmbedder.run_item` per item, one thread, after ``warmup`` untimed calls."""
    times = []
    with single_thread():
        for _ in range(warmup if items else 0):
            embedder.run_item(items[0])
        for item in items:
            t0 = time.perf_counter()
            embedder.run_item(item)
            times.append(time.perf_counter() - t0)
    return times


def _median_ms(seconds: Iterable[float]) -> float | None:
    values = list(seconds)
    return 1000.0 * statistics.median(values) if values else None


def format_ratio(wmkit_ms: float, model_ms: float) -> str:
    """``1/N`` with N = model_ms / wmkit_ms rounded (one decimal below 10)."""
    speedup = model_ms / wmkit_ms
    return f"1/{speedup:.0f}" if speedup >= 10 else f"1/{speedup:.1f}"


def speed_ratios(models: Mapping[str, dict], reference: str = "wmkit") -> list[dict]:
    """wmkit's latency against every other timed model (full-length inputs when measured).

    ``required_speedup`` is the issue's claim for that model (5 for MiniLM, 30 for RoBERTa-base-size
    encoders); ``passes`` is None where there is no claim.
    """
    ref = models.get(reference)
    if not ref:
        return []
    out = []
    for name, m in models.items():
        if name == reference or m.get("kind") in ("lexical", "random"):
            continue
        basis = "full-length inputs" if m.get("cpu_ms_full") and ref.get("cpu_ms_full") else "real queries"
        key = "cpu_ms_full" if basis == "full-length inputs" else "cpu_ms"
        if not m.get(key) or not ref.get(key):
            continue
        speedup = m[key] / ref[key]
        required = m.get("speed_target")
        out.append({"model": name, "basis": basis, "wmkit_ms": ref[key], "model_ms": m[key],
                    "speedup": speedup, "ratio": format_ratio(ref[key], m[key]),
                    "wmkit_tokens": ref.get("max_tokens"), "model_tokens": m.get("max_tokens"),
                    "required_speedup": required, "passes": None if required is None else bool(speedup >= required)})
    return out


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------


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


def _time_real_queries(entry: dict, embedder: EditEmbedder, latency_pairs: EditPairs) -> None:
    """``cpu_ms`` (median over real queries), token counts and tokenizing time of one model."""
    items = embedder.latency_items(latency_pairs)
    if not items:
        return
    seconds = time_items(embedder, items)
    entry["cpu_ms"] = _median_ms(seconds)
    entry["latency_samples"] = len(seconds)
    entry["tokens_median"] = [float(statistics.median(i.tokens[0] for i in items)),
                              float(statistics.median(i.tokens[1] for i in items))]
    entry["tokenize_ms"] = _median_ms(i.tokenize_s for i in items if i.tokenize_s is not None)


def time_full_length(embedders: Sequence[EditEmbedder], reps: int, *, seed: int = 0, warmup: int = 2,
                     advance=None) -> dict[str, list[float]]:
    """Seconds per full-length input for every model, **interleaved** (round-robin over models).

    Each round times one input per model, so a load change on the machine hits every model alike
    and the ratios between them stay meaningful. One thread; ``warmup`` untimed calls per model.
    """
    items = {e.name: e.full_length_items(reps, seed=seed) for e in embedders}
    timed = [e for e in embedders if items[e.name]]
    out: dict[str, list[float]] = {e.name: [] for e in timed}
    with single_thread():
        for e in timed:
            for _ in range(warmup):
                e.run_item(items[e.name][0])
        for r in range(reps):
            for e in timed:
                t0 = time.perf_counter()
                e.run_item(items[e.name][r])
                out[e.name].append(time.perf_counter() - t0)
            if advance:
                advance(1)
    return out


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
        q, g, note = choose_sizes(len(pool), queries, gallery)
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


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------


def add_retrieval_command(bench_group) -> None:
    """Register ``wmkit bench retrieval`` on the ``bench`` click group (called by ``wmkit.cli``)."""
    import click

    from wmkit.bench.baselines import RANDOM_ARCHS

    @bench_group.command("retrieval")
    @click.argument("checkpoint", type=click.Path(path_type=Path))
    @click.option("--queries", default=1000, show_default=True, help="Held-out edits used as queries.")
    @click.option("--gallery", default=5000, show_default=True,
                  help="Held-out edits to rank (shrunk, with a note, when the validation split is smaller).")
    @click.option("--baseline", "baselines", multiple=True, metavar="NAME_OR_PATH",
                  help="Also run this model: minilm (bundled), unixcoder, codebert, codet5p, a local model folder, "
                       "or a hub id. Repeatable. Lexical and random baselines always run.")
    @click.option("--actions", type=click.Choice(ACTION_CHOICES), default="15d", show_default=True,
                  help="Action vector for the cos@ criteria: 15d, 7d (first 7 dims of 15-D), or the domain's native one.")
    @click.option("--embedding", type=click.Choice(tuple(EMBEDDINGS)), default="target_online", show_default=True,
                  help="wmkit edit embedding: target(after)−online(before) (paper) or online(after)−online(before) "
                       "(reference scripts).")
    @click.option("--latency-queries", default=DEFAULT_LATENCY_QUERIES, show_default=True,
                  help="Queries timed per model (batch 1, one thread; median).")
    @click.option("--full-length-reps", default=FULL_LENGTH_REPS, show_default=True,
                  help="Full-length inputs timed per model, round-robin across models (median; the speed ratios).")
    @click.option("--latency-only", is_flag=True, help="Only time the models at full length (no data, no retrieval).")
    @click.option("--random-arch", "random_arch", multiple=True, type=click.Choice(tuple(RANDOM_ARCHS)),
                  help="Also time a randomly initialised encoder of this shape (no download). Repeatable.")
    @click.option("--data", default=None, help="Benchmark on another source's validation split.")
    @click.option("--split", type=click.Choice(["val", "holdout"]), default="val", show_default=True,
                  help="Draw queries and gallery from the validation split or the held-out repositories.")
    @click.option("--seed", default=42, show_default=True, help="Sampling seed.")
    @click.option("--trust-remote-code", is_flag=True, help="Allow --baseline models that ship their own code.")
    @click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write JSON here.")
    @reports_errors
    def bench_retrieval(checkpoint, queries, gallery, baselines, actions, embedding, latency_queries, full_length_reps,
                        latency_only, random_arch, data, split, seed, trust_remote_code, json_path):
        """Edit retrieval (MRR@10, R@1, R@5) and batch-1 CPU latency against foundation models."""
        from wmkit.bench.report import render_retrieval

        result = run_retrieval_bench(checkpoint, queries=queries, gallery=gallery, baselines=baselines,
                                     actions=actions, embedding=embedding, latency_queries=latency_queries,
                                     latency_only=latency_only, random_arch=random_arch, seed=seed,
                                     progress=True, data=data, trust_remote_code=trust_remote_code,
                                     full_length_reps=full_length_reps, split=split)
        render_retrieval(result)
        if json_path:
            write_result(result, json_path)
            click.echo(f"wrote {json_path}")


def render_retrieval(result: dict, console=None) -> None:
    """Print ``result`` as rich tables (see :func:`wmkit.bench.report.render_retrieval`)."""
    from wmkit.bench.report import render_retrieval as _render

    _render(result, console=console)


__all__ = [
    "CRITERIA", "EMBEDDINGS", "ACTION_CHOICES", "RESULT_FORMAT", "choose_sizes", "sample_queries_gallery",
    "training_overlap", "content_duplicates", "Annotations", "parse_criterion", "relevance_matrix", "rank_gallery",
    "score_ranking", "select_actions", "WmkitEmbedder", "single_thread", "time_items", "format_ratio",
    "speed_ratios", "time_full_length", "run_retrieval_bench", "write_result", "add_retrieval_command", "render_retrieval",
]
