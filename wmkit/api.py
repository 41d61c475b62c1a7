"""The Python API for notebooks and scripts: what ``wmkit.load_recipe``, ``wmkit.train``,
``wmkit.audit``, ``wmkit.sweep`` and ``wmkit.load`` call (see docs/python.md).

Every function here is a thin layer over what the command line runs (:func:`wmkit.recipe.load_recipe`,
:func:`wmkit.train.train`, :func:`wmkit.audit.run_audit`, the sweep plan and executors,
:func:`wmkit.checkpoint.load_checkpoint`); they differ from the commands only in taking Python
values (overrides as a dict, grids as a dict) and returning objects instead of printing tables.

Inputs of a loaded model (:class:`LoadedModel`): **source text** (``str`` or a list of them), tokenized
by the model's own domain exactly as training data was (the domain's ``transition`` for a pair, cut to
``data.max_len`` with the recipe's ``data.window``), or **prepared token ids** (``[L]`` or ``[N, L]``
integers of the model's vocabulary, at most ``data.max_len`` per row; shorter rows are padded), as
:class:`wmkit.prepare.PreparedData` holds them. Outputs are float32 NumPy arrays ``[N, D]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from wmkit.errors import DataError, RecipeError, WmkitError
from wmkit.recipe import RecipeOptions

#: pairs per forward pass of the loaded-model helpers
CHUNK = 64


# ---------------------------------------------------------------------------------------------
# recipes
# ---------------------------------------------------------------------------------------------


def override_strings(overrides: Mapping[str, Any] | Iterable[str] | None) -> list[str]:
    """``{"a.b": 1, "c": {"d": "x"}}`` or ``["a.b=1"]`` -> ``["a.b=1", 'c.d="x"']`` (the ``--set`` grammar)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if not isinstance(overrides, Mapping):
        return [str(o) for o in overrides]
    out: list[str] = []

    def walk(node: Mapping, prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(value, f"{dotted}.")
            elif value is None:
                raise RecipeError(f"overrides: {dotted} = None has no TOML value; leave the key out instead")
            else:
                out.append(f"{dotted}={json.dumps(value.as_posix() if isinstance(value, Path) else value)}")

    walk(overrides, "")
    return out


def load_recipe(name_or_path: str | Path | None = None, overrides: Mapping[str, Any] | Iterable[str] | None = None,
                *, domain: str | None = None, host=None):
    """A resolved :class:`wmkit.recipe.Recipe`: a shipped recipe name or a TOML path (``None``: the
    domain's default), with ``overrides`` as a dict (``{"train.steps": 20}`` or nested) or ``"a.b=v"``
    strings, and ``WM_*`` environment variables, as ``wmkit recipe show`` resolves it."""
    from wmkit.recipe import load_recipe as resolve

    host = host or _host()
    if domain is not None:
        host.get("domain", domain)  # an unknown domain names the available ones
    return resolve(None if name_or_path is None else str(name_or_path), overrides=override_strings(overrides),
                   domain=domain, host=host)


def _host():
    from wmkit.plugins import get_host

    return get_host()


def _recipe(recipe, overrides=None, host=None):
    from wmkit.recipe import Recipe

    if isinstance(recipe, Recipe):
        if not overrides:
            return recipe
        from wmkit.recipe import recipe_over_run

        # further overrides on a resolved recipe: applied to its values, recorded after its own
        changed = recipe_over_run(recipe.values, overrides=list(overrides), host=host or _host(), origin=recipe.origin)
        changed.overrides = [*recipe.overrides, *changed.overrides]
        return changed
    return load_recipe(recipe, overrides, host=host)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def read_metrics(run_dir: str | Path, kind: str = "train") -> list[dict]:
    """Rows of ``RUN/metrics.jsonl``: ``train`` (one per step), ``eval`` (probe evaluations),
    ``warning`` or ``all``; a line cut by a kill is skipped."""
    kinds = ("train", "eval", "warning", "all")
    if kind not in kinds:
        raise WmkitError(f"metrics kind {kind!r}: choose one of {', '.join(kinds)}")
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise DataError(f"{path}: no metrics log; is {run_dir} a run directory of `wmkit train`?")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        event = row.get("event", "train")
        if kind == "all" or event == kind:
            rows.append(row)
    return rows


def metrics_frame(run_dir: str | Path, kind: str = "train"):
    """:func:`read_metrics` as a pandas DataFrame when pandas is installed, else the list of dicts."""
    rows = read_metrics(run_dir, kind)
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def train(recipe, overrides: Mapping[str, Any] | Iterable[str] | None = None, *, out: str | Path | None = None,
          data: str | None = None, resume: bool = False, force: bool = False, early_stop: int | None = None,
          live: bool = False, console=None, host=None):
    """Train ``recipe`` (a :class:`wmkit.recipe.Recipe`, a shipped name or a path, with ``overrides``)
    into ``out`` (default under ``runs/``), as ``wmkit train`` does; returns its
    :class:`wmkit.train.RunResult` (``.run_dir``, ``.last_eval``, ``.metrics()``)."""
    from rich.console import Console

    from wmkit.train import train as run_training

    host = host or _host()
    extra = override_strings(overrides)
    if data is not None:
        extra.append(f"data.source={json.dumps(data)}")
    resolved = _recipe(recipe, extra, host)
    return run_training(resolved, out=out, resume=resume, force=force, early_stop=early_stop, host=host,
                        console=console or Console(stderr=True), live=live)


# ---------------------------------------------------------------------------------------------
# audit and sweeps
# ---------------------------------------------------------------------------------------------


def audit(run, *, full_val: bool = False, val_size: int | None = None, geometry: bool = False,
          data: str | None = None, split: str = "val", save: bool = True, progress: bool = False,
          host=None) -> dict:
    """Audit a run directory, a checkpoint directory or an export, as ``wmkit audit`` does; returns the
    JSON-ready result (keys in docs/audit.md; ``wmkit.audit.render_report(result)`` prints it)."""
    from wmkit.audit import run_audit

    return run_audit(getattr(run, "run_dir", run), full_val=full_val, val_size=val_size, geometry=geometry,
                     data=data, progress=progress, save=save, host=host or _host(), split=split)


def export(run, out: str | Path, *, force: bool = False, no_audit: bool = False, push: str | None = None,
           host=None) -> Path:
    """Export a run (its best checkpoint) or a checkpoint to the inference folder ``out``, as ``wmkit
    export`` does (model.safetensors, config.json, README.md model card); returns ``out``."""
    from wmkit.export import export as write_export

    return write_export(getattr(run, "run_dir", run), out, force=force, no_audit=no_audit, push=push,
                        host=host or _host())


@dataclass
class SweepResult:
    """A finished sweep: its directory, final state (``sweep.json``), report and report files."""

    sweep_dir: Path
    state: dict
    report: dict
    files: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [f"{k} ({v['error']})" for k, v in self.state["runs"].items() if v["state"] != "done"]

    def ablation(self):
        """The ablation log as a pandas DataFrame when pandas is installed, else a list of dicts."""
        rows = self.report.get("ablation_log") or []
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)


def _grid_options(grid) -> list[str]:
    if grid is None:
        return []
    if isinstance(grid, Mapping):
        out = []
        for key, values in grid.items():
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            out.append(f"{key}=" + ",".join(json.dumps(v) for v in values))
        return out
    return [str(g) for g in grid]


def sweep(recipe: str | Path, *, grid: Mapping[str, Sequence] | Iterable[str] | None = None,
          seeds: Sequence[int] | str | None = None, steps: int | None = None, audit_at: Sequence | str | None = None,
          overrides: Mapping[str, Any] | Iterable[str] | None = None, data: str | None = None,
          domain: str | None = None, out: str | Path | None = None, jobs: int = 1, executor: str = "local",
          address: str | None = None, gpus_per_run: float = 0.0, val_size: int | None = None,
          full_val: bool = False, tier: str | None = None, console=None, live: bool | None = False) -> SweepResult:
    """Run (or resume) a sweep, as ``wmkit sweep`` does: ``grid`` as ``{"loss.aux.weight": [0.1, 0.3]}``
    or ``--grid`` strings, ``seeds`` as a list, ``audit_at`` as ``[100, "best"]``."""
    from rich.console import Console

    from wmkit.sweep.plan import build_plan, default_sweep_dir, validate
    from wmkit.sweep.report import build_report, write_report
    from wmkit.sweep.run import run_sweep

    if address and executor != "ray":
        raise WmkitError("address: only meaningful with executor='ray'")
    seed_text = seeds if seeds is None or isinstance(seeds, str) else ",".join(str(int(s)) for s in seeds)
    at_text = audit_at if audit_at is None or isinstance(audit_at, str) else ",".join(str(a) for a in audit_at)
    plan = build_plan(str(recipe), grid_options=_grid_options(grid), seeds=seed_text, steps=steps, audit_at=at_text,
                      overrides=override_strings(overrides), data=data, domain=domain, val_size=val_size,
                      full_val=full_val, tier=tier)
    runs = validate(plan, _host())
    sweep_dir = Path(out if out is not None else default_sweep_dir(plan, runs)).resolve()
    state = run_sweep(plan, runs, sweep_dir, executor=executor, jobs=jobs, address=address, gpus_per_run=gpus_per_run,
                      console=console or Console(stderr=True), live=live)
    report = build_report(sweep_dir)
    return SweepResult(sweep_dir=sweep_dir, state=state, report=report, files=write_report(report, sweep_dir))


# ---------------------------------------------------------------------------------------------
# a loaded model
# ---------------------------------------------------------------------------------------------


def _edit_embedder(loaded, embedding: str):
    """The retrieval benchmark's edit embedder over this model: one call site, so the edit embedding
    here is by construction the one ``wmkit bench retrieval`` (and an index built from it) measures."""
    from wmkit.bench.retrieval import WmkitEmbedder

    return WmkitEmbedder(loaded.model, embedding=embedding, vocab_size=loaded.vocab_size, pad_id=loaded.pad_id,
                         sequence_length=loaded.max_len)


def _is_text(value) -> bool:
    return isinstance(value, str) or (isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], str))


@dataclass
class Transitions:
    """Prepared pairs: token ids ``[N, L]`` of both states and action vectors ``[N, A]``."""

    before: np.ndarray
    after: np.ndarray
    actions: np.ndarray

    def __len__(self) -> int:
        return int(self.before.shape[0])


class LoadedModel:
    """A world model loaded for inference by :func:`load` (from an export, a run or a checkpoint).

    ``embed_state`` (a state's embedding), ``embed_edit`` (an edit's embedding, the retrieval
    benchmark's), ``predict`` (the predicted embedding of the next state), ``transitions`` (texts to
    token ids and actions through the model's domain). ``.model`` is the torch module, ``.config``
    what the checkpoint or export recorded, ``.recipe`` its resolved recipe.
    """

    def __init__(self, loaded, host=None):
        self._loaded = loaded
        self.model = loaded.model
        self.recipe = loaded.recipe
        self.config = loaded.info
        self.path = loaded.path
        self.domain_name = loaded.info.get("domain")
        self.vocab_size = int(loaded.info["vocab_size"])
        self.pad_id = int(loaded.info["pad_id"])
        self.action_dim = int(loaded.info["action_dim"])
        self._options = RecipeOptions.of(loaded.recipe)
        self.max_len = self._options.data.max_len
        self._host = host
        self._domain = None

    def __repr__(self) -> str:
        return (f"LoadedModel({str(self.path)!r}, domain={self.domain_name!r}, step={self.config.get('step')}, "
                f"dim={self.dim}, max_len={self.max_len})")

    @property
    def dim(self) -> int:
        return self._options.model.dim

    @property
    def domain(self):
        """The model's domain, built with the recipe's ``[data]`` options; its vocabulary must be the model's."""
        if self._domain is None:
            from wmkit.checkpoint import check_vocab
            from wmkit.runtime import make_domain

            domain = make_domain(self.recipe, self._host)
            check_vocab(self.config, domain)
            self._domain = domain
        return self._domain

    # -- inputs ------------------------------------------------------------------------------------
    def tokenize(self, texts: str | Sequence[str]) -> np.ndarray:
        """Token ids ``[N, L]`` of states given as source text (the first ``data.max_len`` tokens, padded)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.full((len(texts), self.max_len), self.pad_id, dtype=np.int64)
        for i, text in enumerate(texts):
            ids = list(self.domain.tokenize(text))[:self.max_len]
            out[i, :len(ids)] = ids
        return out

    def transitions(self, before: str | Sequence[str], after: str | Sequence[str], *,
                    files: str | Sequence[str] | None = None,
                    fields: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> Transitions:
        """Pairs of source texts -> token ids and actions, as training prepared them (the domain's
        ``transition`` of a CommitPackFT row, then the recipe's ``data.window`` cut to ``data.max_len``).
        ``files`` names each pair's file (domains read the language from it); ``fields`` adds other row
        fields (one mapping for all pairs, or one per pair). A pair the domain drops is an error."""
        from wmkit.domain import SkipRow
        from wmkit.prepare import fit_window

        before = [before] if isinstance(before, str) else list(before)
        after = [after] if isinstance(after, str) else list(after)
        if len(before) != len(after):
            raise DataError(f"before/after: {len(before)} before texts but {len(after)} after texts; pass one each")
        names = [files] * len(before) if files is None or isinstance(files, str) else list(files)
        extra = [fields or {}] * len(before) if fields is None or isinstance(fields, Mapping) else list(fields)
        if len(names) != len(before) or len(extra) != len(before):
            raise DataError(f"files/fields: give one per pair ({len(before)}) or one for all")
        window = self._options.data.window
        b_out, a_out, actions = [], [], []
        for i, (old, new) in enumerate(zip(before, after)):
            row = {**extra[i], "old_contents": old, "new_contents": new}
            if names[i]:
                row.update(old_file=names[i], new_file=names[i])
            try:
                tr = self.domain.transition(row)
            except SkipRow as exc:
                raise DataError(f"pair {i}: the {self.domain_name} domain drops it ({exc}); pass a real edit") from None
            except Exception as exc:  # a domain that needs other row fields, or text it cannot read
                raise DataError(f"pair {i}: the {self.domain_name} domain cannot read it ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]}); pass the row fields it needs with fields=") from None
            b, a, _ = fit_window(tr.before, tr.after, self.max_len, window, self.pad_id)
            b_out.append(b)
            a_out.append(a)
            actions.append(np.asarray(tr.action, dtype=np.float32).reshape(-1))
        return Transitions(np.stack(b_out).astype(np.int64), np.stack(a_out).astype(np.int64), np.stack(actions))

    def _tokens(self, states, what: str) -> np.ndarray:
        if _is_text(states):
            return self.tokenize(states)
        ids = np.asarray(states.detach().cpu().numpy() if hasattr(states, "detach") else states)
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise DataError(f"{what}: expected source text or integer token ids [N, L], got an array of shape "
                            f"{ids.shape} and dtype {ids.dtype}")
        if ids.shape[1] > self.max_len:
            raise DataError(f"{what}: {ids.shape[1]} token ids per row but the model reads at most {self.max_len} "
                            f"(data.max_len); cut them, or pass the source text")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise DataError(f"{what}: token ids outside the model's vocabulary 0..{self.vocab_size - 1}")
        if ids.shape[1] < self.max_len:
            ids = np.concatenate([ids, np.full((ids.shape[0], self.max_len - ids.shape[1]), self.pad_id, ids.dtype)], 1)
        return ids.astype(np.int64)

    def _pair(self, before, after, fields=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if _is_text(before):
            t = self.transitions(before, after, fields=fields)
            return t.before, t.after, t.actions
        b, a = self._tokens(before, "before"), self._tokens(after, "after")
        if len(b) != len(a):
            raise DataError(f"before/after: {len(b)} before states but {len(a)} after states; pass one each")
        return b, a, None

    def _device(self):
        return next(self.model.parameters()).device

    # -- outputs -----------------------------------------------------------------------------------
    def embed_state(self, states, *, target: bool = False) -> np.ndarray:
        """The online encoder's readout ``[N, D]`` of states (texts or token ids); ``target=True``: the
        EMA target encoder's (the space predictions live in)."""
        import torch

        ids = self._tokens(states, "states")
        out = []
        with torch.inference_mode():
            for start in range(0, len(ids), CHUNK):
                chunk = torch.from_numpy(ids[start:start + CHUNK]).to(self._device())
                out.append(self.model.encode(chunk, target=target).z.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_edit(self, before, after, *, embedding: str = "target_online", fields=None) -> np.ndarray:
        """The edit embedding ``[N, D]`` of pairs (texts or token ids): ``target(after) − online(before)``
        (``embedding="target_online"``, the paper's) or ``online(after) − online(before)``; the same
        vectors ``wmkit bench retrieval`` ranks."""
        from wmkit.bench.baselines import EditPairs

        b, a, _ = self._pair(before, after, fields)
        return _edit_embedder(self, embedding).embed(EditPairs(before_text=[], after_text=[], before_tokens=b,
                                                               after_tokens=a))

    def predict(self, before, after=None, *, actions=None, fields=None) -> np.ndarray:
        """The predicted target embedding ``ẑ`` ``[N, D]`` of the state after each edit.

        Texts: pass ``before`` and ``after``; the action is computed from the pair by the domain, as
        in training. Token ids: pass ``actions`` (``[N, A]``) too, and ``after`` when the action encoder
        reads the edit's tokens (``model.action.name = "edit_tokens"``)."""
        import torch

        from wmkit.components import ActionInputs

        if _is_text(before):
            if after is None:
                raise DataError("predict: with source text pass after= as well (the action is computed from the pair)")
            b, a, vec = self._pair(before, after, fields)
        else:
            b = self._tokens(before, "before")
            a = None if after is None else self._tokens(after, "after")
            vec = None
        if actions is not None:
            vec = np.asarray(actions, dtype=np.float32).reshape(len(b), -1)
        if vec is None:
            raise DataError("predict: token ids need actions= (an [N, A] array of the domain's action vectors); "
                            "or pass source text before and after")
        if vec.shape != (len(b), self.action_dim):
            raise DataError(f"actions: shape {vec.shape} but the model takes [{len(b)}, {self.action_dim}]")
        device = self._device()
        out = []
        with torch.inference_mode():
            for start in range(0, len(b), CHUNK):
                sl = slice(start, start + CHUNK)
                tb = torch.from_numpy(b[sl]).to(device)
                ta = None if a is None else torch.from_numpy(a[sl]).to(device)
                encoded = self.model.encode(tb)
                base = self.model.encode(tb, target=True).z if self.model.starts_from_target else None
                inputs = ActionInputs(vector=torch.from_numpy(vec[sl]).to(device), before=tb, after=ta)
                out.append(self.model.predict_with(self.model.predictor_input(encoded), inputs, base=base)
                           .float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def load(path: str | Path, *, device: str = "cpu", host=None) -> LoadedModel:
    """Load an export folder (``wmkit export``), a run directory (its best checkpoint, else latest) or a
    checkpoint directory for inference. Nothing is unpickled."""
    from wmkit.checkpoint import load_checkpoint

    host = host or _host()
    return LoadedModel(load_checkpoint(path, host=host, device=device), host=host)
