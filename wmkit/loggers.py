"""Experiment loggers: the base class plugins implement, the metric names, and the fan-out training uses.

A logger is a component of kind ``logger`` (:data:`wmkit.kinds.KINDS`): ``train.loggers = ["tensorboard"]``
or ``wmkit train --logger tensorboard`` chooses it, its options live in ``[logger.NAME]``. The built-in
``jsonl`` logger (``metrics.jsonl``, the source of truth every wmkit reader uses) is always on.

Metric names are namespaced the way the field's trackers expect: ``train/<term>`` for every training
step's loss terms, learning rate and gradient norm, ``val/<metric>`` for the validation probe,
``audit/<metric>`` for an audit's headline. The old ``metrics.jsonl`` name of a metric is its name without
the namespace (``train/loss`` was ``loss``, ``val/knn_at_1`` was ``knn_at_1`` of an ``eval`` row); the
file keeps the old names and gains the new ones (docs/loggers.md).

:class:`LoggerSet` is what the training loop writes to: it calls every logger, and a logger that fails
(its package missing, its server unreachable, an exception in a call) is warned about once and dropped,
while training goes on. The kind's always-on loggers (``jsonl``) are never dropped: their failure is
the run's failure.

Only rank 0 of a distributed run opens loggers. This module imports no torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

from wmkit import kinds
from wmkit.recipe import RecipeOptions

#: namespace of each kind of record -> the ``event`` its ``metrics.jsonl`` row carries (None: a step row)
NAMESPACES = {"train": None, "val": "eval", "audit": "audit"}


class Logger:
    """One experiment tracker. Every method but the constructor is optional (the default does nothing).

    Constructed as ``cls(run_dir=, run_name=, start_step=, options=)``: ``run_dir`` is the run directory,
    ``run_name`` a readable name (recipe name and seed), ``start_step`` the step a resumed run continues
    after (0 for a new run; a logger may drop what it holds past it), ``options`` the resolved
    ``[logger.NAME]`` table. A missing package should raise ``ImportError`` from the constructor.
    """

    options: ClassVar[Any] = {}

    def __init__(self, *, run_dir: Path, run_name: str, start_step: int, options: Mapping[str, Any]):
        self.run_dir = Path(run_dir)
        self.run_name = run_name
        self.start_step = start_step
        self.settings = dict(options)

    def log_hyperparameters(self, params: Mapping[str, Any]) -> None:
        """The resolved recipe, flattened to dotted keys (``optim.lr``); lists are given as strings."""

    def log_metrics(self, step: int, metrics: Mapping[str, float | None]) -> None:
        """Namespaced numbers of one step, all of one namespace (``train/loss``, ``val/knn_at_1``);
        a non-finite value is ``None``."""

    def log_warning(self, step: int, kind: str, message: str) -> None:
        """A training warning (memorisation, loss explosion, divergence, a failing logger)."""

    def log_event(self, step: int, name: str, fields: Mapping[str, Any]) -> None:
        """Something that happened at ``step`` besides metrics (``early_stop``)."""

    def log_summary(self, step: int, metrics: Mapping[str, Any]) -> None:
        """An audit's headline (``audit/knn_at_1``, ``audit/verdict``, ...) of the checkpoint at ``step``."""

    def close(self) -> None:
        """Flush and release; called once, also when training fails."""


def namespaced(namespace: str, row: Mapping[str, Any]) -> dict[str, float | None]:
    """The numbers of ``row`` under ``namespace/`` (``step`` and ``event`` left out; NaN and inf -> None)."""
    out: dict[str, float | None] = {}
    for key, value in row.items():
        if key in ("step", "event") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[f"{namespace}/{key}"] = value if isinstance(value, int) else float(value) if math.isfinite(value) else None
    return out


def legacy_row(step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The ``metrics.jsonl`` row of one :meth:`Logger.log_metrics` call: the old names (the namespace
    dropped), the ``event`` of the namespace, then the namespaced names."""
    namespace = next(iter(metrics), "train/").split("/", 1)[0]
    event = NAMESPACES.get(namespace, namespace)
    row: dict[str, Any] = {"event": event} if event else {}
    row["step"] = step
    row.update({key.split("/", 1)[1]: value for key, value in metrics.items()})
    row.update(metrics)
    return row


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1e-3}}`` -> ``{"optim.lr": 1e-3}``; lists become their JSON-like text."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{path}."))
        elif isinstance(value, (list, tuple)):
            out[path] = "[" + ", ".join(map(str, value)) + "]"
        else:
            out[path] = value
    return out


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class LoggerSet:
    """Every chosen logger behind one object; a failing optional logger warns once and is dropped.

    ``warn(message)`` reports a dropped logger (the training loop records it as a warning). Use it as a
    context manager: every logger is closed on the way out.
    """

    def __init__(self, loggers: Iterable[tuple[str, Logger, bool]] = (), warn: Callable[[str], None] | None = None):
        #: (name, logger, required) in the recipe's order
        self.loggers = list(loggers)
        self._warn = warn or (lambda message: None)
        #: warnings about loggers that could not be constructed, said by :meth:`start`
        self.pending: list[str] = []

    def __enter__(self) -> "LoggerSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, *args: Any) -> None:
        for entry in list(self.loggers):
            name, logger, required = entry
            try:
                getattr(logger, method)(*args)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if required:
                    raise
                self.loggers.remove(entry)  # first, so that the warning it raises does not reach it
                self._warn(f"logger {name!r} failed in {method} ({_describe(exc)}); training goes on without "
                           f"it (metrics.jsonl has every row)")
                try:
                    logger.close()
                except Exception:  # already failing: the warning above is the one said
                    pass

    def start(self, recipe: Mapping[str, Any] | None = None) -> None:
        """Say which loggers could not be opened (once the caller can record it), then log ``recipe``
        (the resolved values) as hyper-parameters."""
        pending, self.pending = self.pending, []
        for message in pending:
            self._warn(message)
        if recipe is not None:
            self._call("log_hyperparameters", flatten(recipe))

    def metrics(self, step: int, namespace: str, row: Mapping[str, Any]) -> None:
        self._call("log_metrics", step, namespaced(namespace, row))

    def warning(self, step: int, kind: str, message: str) -> None:
        self._call("log_warning", step, kind, message)

    def event(self, step: int, name: str, fields: Mapping[str, Any]) -> None:
        self._call("log_event", step, name, dict(fields))

    def summary(self, step: int, metrics: Mapping[str, Any]) -> None:
        self._call("log_summary", step, dict(metrics))

    def close(self) -> None:
        entries, self.loggers = self.loggers, []
        first_error = None
        for name, logger, required in entries:
            try:
                logger.close()
            except Exception as exc:
                if required and first_error is None:
                    first_error = exc
                elif not required:
                    self._warn(f"logger {name!r} failed in close ({_describe(exc)})")
        if first_error is not None:
            raise first_error


def open_loggers(values: Mapping, host, *, run_dir: Path, start_step: int,
                 warn: Callable[[str], None]) -> LoggerSet:
    """The loggers a resolved recipe chooses (``train.loggers`` plus the always-on ones), constructed.

    An optional logger that cannot be constructed (package missing, server unreachable) is left out and
    warned about once by :meth:`LoggerSet.start`; an always-on one that cannot be constructed raises.
    """
    kind = kinds.get("logger")
    meta = RecipeOptions.of(values).meta
    run_name = f"{meta.name}_seed{meta.seed}"
    chosen: list[tuple[str, Logger, bool]] = []
    failed: list[str] = []
    for name in kind.names(values):
        required = name in kind.always
        try:
            logger = host.construct("logger", name, run_dir=Path(run_dir), run_name=run_name,
                                    start_step=start_step, options=kind.options(values, name))
        except Exception as exc:
            if required:
                raise
            failed.append(f"{exc}; training goes on without logger {name!r} (metrics.jsonl has every row)")
            continue
        chosen.append((name, logger, required))
    loggers = LoggerSet(chosen, warn)
    loggers.pending = failed
    return loggers


#: audit keys that are bookkeeping, not results
_AUDIT_BOOKKEEPING = ("step", "sample_seed", "train_rows_available", "val_rows_available", "embedding_dim")


def audit_headline(result: Mapping[str, Any]) -> dict[str, Any]:
    """An audit result's headline under ``audit/``: its top-level numbers (the model's metrics), the
    baselines' KNN beside them (``copy_knn_at_k`` -> ``audit/copy_knn_at_1``, ...), the share of pairs
    that beat copy, and the verdict."""
    flat = {k: v for k, v in result.items() if k not in _AUDIT_BOOKKEEPING}
    for key, table in result.items():
        if key.endswith("_knn_at_k") and isinstance(table, Mapping):
            flat.update({f"{key[:-1]}{k}": v for k, v in table.items()})
    if isinstance(result.get("beats_copy"), Mapping):
        flat["beats_copy"] = result["beats_copy"].get("rate")
    out: dict[str, Any] = namespaced("audit", flat)
    if result.get("verdict") is not None:
        out["audit/verdict"] = str(result["verdict"])
    return out


def log_audit(run_dir: Path, result: Mapping[str, Any], host, warn: Callable[[str], None]) -> None:
    """Send an audit's headline to the loggers of the run it audited (the ones its recipe chose).

    The loggers are opened without dropping anything (``start_step`` 0) and closed again; an optional
    logger that fails is warned about once.
    """
    import json

    try:
        values = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))["recipe"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a wmkit run directory: nothing to report to
    step = result.get("step") if isinstance(result.get("step"), int) else 0
    with open_loggers(values, host, run_dir=Path(run_dir), start_step=0, warn=warn) as loggers:
        loggers.start()
        loggers.summary(step, audit_headline(result))
