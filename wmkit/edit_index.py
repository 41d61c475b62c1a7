"""Edit search: an on-disk index of a source's transitions under a model's edit embedding.

An index directory holds three files, none of them pickled:

- ``index.faiss``: the unit-norm edit embeddings ``target(after) − online(before)`` (faiss's own format);
- ``rows.json``: one entry per indexed transition, in index order (commit, file, subject, date, excerpt);
- ``index.json``: what it was built from (source, domain, vocabulary, the model and its weights'
  identity, the data settings that shaped the tokens).

:func:`build_index` writes one (``update=True``: adds the commits not yet in it); :func:`search` ranks
its rows against a query edit (a commit, a patch, or two files). The model is loaded by
:func:`load_model` alone, so that a run, a checkpoint or (later) an exported folder all go through it.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from wmkit import __version__
from wmkit.errors import CheckpointError, DataError, RecipeError

INDEX_FORMAT = "wmkit-edit-index/1"
META_FILE, ROWS_FILE, FAISS_FILE = "index.json", "rows.json", "index.faiss"
EMBEDDING = "target_online"
#: changed lines kept per row as its diff excerpt
EXCERPT_LINES = 6
#: rows tokenized and embedded at a time
BATCH_ROWS = 256


# ----------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------
@dataclass
class IndexModel:
    """A world model with what an index records about it."""

    model: Any
    recipe: dict
    domain: str
    vocab_version: str
    path: str
    identity: str


def weights_identity(model) -> str:
    """sha256 (first 16 hex digits) of the tensors the edit embedding runs through: names, shapes, bytes."""
    digest = hashlib.sha256()
    for prefix, module in (("encoder", model.encoder), ("target", model.target)):
        for name, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{prefix}.{name}:{tuple(t.shape)}:{t.dtype}".encode())
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def load_model(spec: str | Path, *, host=None) -> IndexModel:
    """The model of a run directory or checkpoint directory (the one loader edit search uses)."""
    from wmkit.checkpoint import load_checkpoint

    lc = load_checkpoint(spec, host=host)
    return IndexModel(model=lc.model, recipe=lc.recipe, domain=str(lc.info.get("domain")),
                      vocab_version=str(lc.info.get("vocab_version")), path=str(Path(spec).resolve()),
                      identity=weights_identity(lc.model))


def _domain_of(im: IndexModel, host):
    from wmkit.checkpoint import check_vocab
    from wmkit.runtime import make_domain

    domain = make_domain(im.recipe, host)
    check_vocab({"domain": im.domain, "vocab_version": im.vocab_version}, domain)
    return domain


def _data_settings(recipe: dict) -> dict:
    from wmkit.recipe import RecipeOptions

    data = RecipeOptions.of(recipe).data
    return {"max_len": data.max_len, "window": data.window, "min_changed_tokens": data.min_changed_tokens}


# ----------------------------------------------------------------------------------------------
# rows -> embeddings
# ----------------------------------------------------------------------------------------------
def diff_excerpt(old: str, new: str, lines: int = EXCERPT_LINES) -> str:
    """The first ``lines`` removed / added lines of the edit, as ``-`` / ``+`` lines."""
    changed = [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    more = len(changed) - lines
    return "\n".join(changed[:lines] + ([f"… {more} more changed lines"] if more > 0 else []))


def _entry(row: dict, dates: dict) -> dict:
    commit = str(row.get("commit") or "")
    return {"commit": commit, "file": str(row.get("new_file") or row.get("old_file") or ""),
            "subject": str(row.get("subject") or "").split("\n", 1)[0],
            "date": dates.get(commit, str(row.get("date") or "")),
            "excerpt": diff_excerpt(row.get("old_contents") or "", row.get("new_contents") or "")}


def _batches(rows: Iterable[dict], size: int) -> Iterable[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_rows(im: IndexModel, domain, rows: Iterable[dict], dates: dict | None = None, *, progress=None
               ) -> tuple[np.ndarray, list[dict], dict[str, int]]:
    """``(embeddings [N, D], entries, dropped)``: the edit embedding of every row the domain keeps,
    its table entry, and the count of rows dropped per reason."""
    from wmkit.encode import edit_embedding
    from wmkit.prepare import tokenize_rows

    settings = _data_settings(im.recipe)
    vecs, entries, dropped = [], [], {}
    for batch in _batches(rows, BATCH_ROWS):
        reasons, before, after, _ = tokenize_rows(domain, batch, **settings)
        for reason in reasons:
            if reason is not None:
                dropped[reason] = dropped.get(reason, 0) + 1
        kept = [row for row, reason in zip(batch, reasons) if reason is None]
        if kept:
            vecs.append(edit_embedding(im.model, before, after, embedding=EMBEDDING))
            entries.extend(_entry(row, dates or {}) for row in kept)
        if progress is not None:
            progress(len(batch))
    out = np.concatenate(vecs) if vecs else np.zeros((0, 0), dtype=np.float32)
    return out, entries, dropped


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------
def _git_source(source: str) -> str | None:
    """The ``PATH[@REV]`` of a ``git:`` source, else None."""
    return source[len("git:"):] if source.startswith("git:") else None


def read_meta(index_dir: Path) -> dict:
    """``index.json`` of an index directory, or a one-line error naming it."""
    path = Path(index_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{index_dir}: not an edit index (no {META_FILE}); build one with wmkit index") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}); rebuild the index with wmkit index --force"
                        ) from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        raise DataError(f"{path}: not a {INDEX_FORMAT} index; rebuild it with wmkit index --force")
    return meta


def _read_rows(index_dir: Path) -> list[dict]:
    path = Path(index_dir) / ROWS_FILE
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}); rebuild the index with wmkit index --force"
                        ) from None
    return rows


def _read_faiss(index_dir: Path, meta: dict):
    from wmkit.search import load_index

    path = Path(index_dir) / FAISS_FILE
    try:
        index = load_index(path)
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{path}: unreadable faiss index ({str(exc).splitlines()[0][:120]}); rebuild it with "
                        f"wmkit index --force") from None
    if index.ntotal != meta.get("count"):
        raise DataError(f"{path}: holds {index.ntotal} rows but {META_FILE} says {meta.get('count')}; rebuild it "
                        f"with wmkit index --force")
    return index


def check_same_model(meta: dict, im: IndexModel, index_dir: Path) -> None:
    """Refuse a model of another domain, vocabulary or weights than the index's."""
    if im.domain != meta.get("domain"):
        raise CheckpointError(f"{index_dir}: the index holds {meta.get('domain')!r} edits but model {im.path} is "
                              f"of domain {im.domain!r}; use a model of the index's domain or rebuild the index")
    if im.vocab_version != meta.get("vocab_version") or im.identity != meta["model"].get("identity"):
        raise CheckpointError(f"{index_dir}: the index was built with model {meta['model'].get('path')} (weights "
                              f"{meta['model'].get('identity')}) but the query's model {im.path} has weights "
                              f"{im.identity}; search with the index's model or rebuild: wmkit index "
                              f"{meta.get('source')} --model {im.path} --out {index_dir} --force")


def _write(out: Path, meta: dict, rows: list[dict], vecs: np.ndarray) -> None:
    """Write the three files into a fresh sibling directory, then swap it in for ``out``."""
    from wmkit.search import cosine_index, save_index

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_index(cosine_index(vecs), tmp / FAISS_FILE)
        (tmp / ROWS_FILE).write_text(json.dumps(rows, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_index(source: str, model: str | Path, out: str | Path, *, force: bool = False, update: bool = False,
                host=None, progress=None) -> dict:
    """Embed every transition of ``source`` with ``model`` and write the index at ``out``; returns its
    ``index.json`` plus ``added`` and ``dropped``. ``update``: keep the index, add the commits it lacks."""
    from wmkit.runtime import resolve_source
    from wmkit.sources import absolute_git_source, git_commit_dates, open_rows, source_fingerprint

    out = Path(out)
    if force and update:
        raise RecipeError("--force and --update: choose one (--force rebuilds, --update adds new commits)")
    if out.exists() and not (force or update):
        raise DataError(f"--out {out}: already exists; pass --update to add new commits or --force to rebuild it")
    if update and not out.exists():
        raise DataError(f"--out {out}: no index to update; run wmkit index without --update first")
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a directory; choose another path")
    old_meta = read_meta(out) if update else None
    im = load_model(model, host=host)
    if old_meta is not None:
        check_same_model(old_meta, im, out)
    domain = _domain_of(im, host)
    source = resolve_source(im.recipe, domain, source)  # "default": the domain's embedded source
    if _git_source(source):
        source = absolute_git_source(_git_source(source))  # searches may run from another directory
    if update and old_meta["source"] != source:
        raise DataError(f"--update: {out} indexes {old_meta['source']}, not {source}; pass the same source or "
                        f"build a new index")
    git = _git_source(source)
    dates = git_commit_dates(git) if git else {}
    known_rows = _read_rows(out) if update else []
    known = {r["commit"] for r in known_rows}
    rows = (row for row in open_rows(source, domain=domain) if not known or str(row.get("commit")) not in known)
    vecs, entries, dropped = embed_rows(im, domain, rows, dates, progress=progress)
    if old_meta is not None:
        index = _read_faiss(out, old_meta)
        old = index.reconstruct_n(0, index.ntotal)
        vecs = np.concatenate([old, vecs]) if len(vecs) else old
        entries = known_rows + entries
    if not entries:
        raise DataError(f"{source}: no transitions the {im.domain} domain keeps (dropped: "
                        f"{', '.join(f'{k} {v}' for k, v in sorted(dropped.items())) or 'none read'}); nothing indexed")
    meta = {"format": INDEX_FORMAT, "wmkit_version": __version__, "source": source,
            "source_fingerprint": source_fingerprint(source, domain=domain), "domain": im.domain,
            "vocab_version": im.vocab_version, "embedding": EMBEDDING, "dim": int(vecs.shape[1]),
            "count": len(entries), "commits": len({e["commit"] for e in entries}),
            "model": {"path": im.path, "identity": im.identity,
                      "recipe_name": (im.recipe.get("meta") or {}).get("name")},
            "data": _data_settings(im.recipe),
            "created": (old_meta or {}).get("created") or _now(), "updated": _now()}
    _write(out, meta, entries, vecs)
    return {**meta, "added": len(entries) - len(known_rows), "dropped": dropped}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# queries
# ----------------------------------------------------------------------------------------------
def _git_repo(meta: dict, what: str) -> str:
    git = _git_source(meta["source"])
    if git is None:
        raise DataError(f"{what}: needs an index of a git: source; this one indexes {meta['source']} "
                        f"(use --before A --after B)")
    from wmkit.sources import git_toplevel

    return git_toplevel(git)


def commit_query(meta: dict, sha: str, domain) -> list[dict]:
    """The rows of commit ``sha`` of the index's repository."""
    from wmkit.sources import git_commit_rows

    repo = _git_repo(meta, f"--commit {sha}")
    found = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise DataError(f"--commit {sha}: not a commit in the repository {repo}")
    return list(git_commit_rows(repo, found.stdout.strip(), domain=domain))


def _patch_paths(text: str) -> list[tuple[str | None, str | None]]:
    """``(old, new)`` paths of each file of a unified diff (None for /dev/null)."""
    paths, old = [], None
    for line in text.splitlines():
        if line.startswith("--- "):
            old = line[4:].split("\t")[0].strip()
        elif line.startswith("+++ ") and old is not None:
            new = line[4:].split("\t")[0].strip()
            strip = lambda p: None if p == "/dev/null" else (p[2:] if p[:2] in ("a/", "b/") else p)  # noqa: E731
            paths.append((strip(old), strip(new)))
            old = None
    return paths


def patch_query(meta: dict, patch: Path) -> list[dict]:
    """Rows of a unified diff applied to the working tree of the index's repository."""
    label = f"--diff {patch}"
    try:
        text = Path(patch).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{label}: cannot read it ({type(exc).__name__})") from None
    paths = _patch_paths(text)
    if not paths:
        raise DataError(f"{label}: not a unified diff (no ---/+++ file headers)")
    repo = Path(_git_repo(meta, label))
    with tempfile.TemporaryDirectory(prefix="wmkit-patch-") as tmp:
        work = Path(tmp)
        olds = {}
        for old, _new in paths:
            if old is None:
                continue
            source = repo / old
            if not source.is_file():
                raise DataError(f"{label}: does not apply to {repo}: {old} is not a file there")
            olds[old] = source.read_text(encoding="utf-8", errors="surrogateescape")
            (work / old).parent.mkdir(parents=True, exist_ok=True)
            (work / old).write_text(olds[old], encoding="utf-8", errors="surrogateescape")
        applied = subprocess.run(["git", "apply", "--whitespace=nowarn", str(Path(patch).resolve())], cwd=work,
                                 capture_output=True, text=True)
        if applied.returncode != 0:
            reason = (applied.stderr.strip().splitlines() or ["git apply failed"])[-1]
            raise DataError(f"{label}: does not apply to {repo} ({reason})")
        rows = []
        for old, new in paths:
            after = (work / new).read_text(encoding="utf-8", errors="surrogateescape") if new else ""
            rows.append({"commit": "", "old_file": old or new, "new_file": new or old,
                         "old_contents": olds.get(old, ""), "new_contents": after, "subject": f"patch {patch}"})
    return rows


def files_query(before: Path, after: Path) -> list[dict]:
    """One row: the edit from file ``before`` to file ``after``."""
    texts = []
    for flag, path in (("--before", before), ("--after", after)):
        try:
            texts.append(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{flag} {path}: cannot read it ({type(exc).__name__})") from None
    return [{"commit": "", "old_file": str(before), "new_file": str(after), "old_contents": texts[0],
             "new_contents": texts[1], "subject": "query"}]


def search(index_dir: str | Path, *, commit: str | None = None, diff: Path | None = None,
           before: Path | None = None, after: Path | None = None, k: int = 10, model: str | Path | None = None,
           host=None) -> dict:
    """The ``k`` indexed edits most similar to each file of the query edit. JSON-ready."""
    from wmkit.search import nearest

    index_dir = Path(index_dir)
    given = [name for name, v in (("--commit", commit), ("--diff", diff), ("--before/--after", before or after))
             if v]
    if len(given) != 1:
        raise RecipeError("give one query: --commit SHA, --diff FILE.patch, or --before A --after B")
    if (before is None) != (after is None):
        raise RecipeError("--before and --after go together")
    if k < 1:
        raise RecipeError(f"-k {k}: must be at least 1")
    meta = read_meta(index_dir)
    im = load_model(model or meta["model"]["path"], host=host)
    check_same_model(meta, im, index_dir)
    domain = _domain_of(im, host)
    if commit:
        rows = commit_query(meta, commit, domain)
    elif diff:
        rows = patch_query(meta, Path(diff))
    else:
        rows = files_query(Path(before), Path(after))
    vecs, entries, dropped = embed_rows(im, domain, rows)
    if not entries:
        raise DataError(f"{given[0]}: the {im.domain} domain keeps no edit of it (dropped: "
                        f"{', '.join(f'{r} {n}' for r, n in sorted(dropped.items())) or 'no changed file'})")
    table = _read_rows(index_dir)
    index = _read_faiss(index_dir, meta)
    own = commit_sha = rows[0]["commit"] if commit else None
    depth = k + (sum(1 for r in table if r["commit"] == own) if own else 0)
    sims, found = nearest(vecs, k=depth, index=index)
    queries = []
    for q, entry in enumerate(entries):
        hits = [(float(s), int(i)) for s, i in zip(sims[q], found[q]) if i >= 0 and table[i]["commit"] != own]
        queries.append({"file": entry["file"], "excerpt": entry["excerpt"],
                        "results": [{"rank": r + 1, "similarity": s, **table[i]} for r, (s, i) in enumerate(hits[:k])]})
    label = (f"--commit {commit}" if commit else f"--diff {diff}" if diff else f"--before {before} --after {after}")
    return {"index": str(index_dir), "source": meta["source"], "domain": meta["domain"], "indexed": meta["count"],
            "query": label, "commit": commit_sha, "k": k, "queries": queries, "dropped": dropped}


__all__ = ["INDEX_FORMAT", "load_model", "weights_identity", "build_index", "search", "read_meta",
           "diff_excerpt", "embed_rows"]
