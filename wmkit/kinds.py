"""The table of component kinds: one row per kind of plugin component.

Everything that depends on the list of kinds is derived from :data:`KINDS`: the hook
specifications (:mod:`wmkit.hookspecs`), the plugin host's registry (:mod:`wmkit.plugins`), the
recipe keys that choose a component and the sections its options join (:mod:`wmkit.recipe`),
model construction (:func:`wmkit.model.build_world_model`) and the ``components`` record of a run's
``config.json``. Adding a kind is one row here plus its base class (docs/plugins.md shows both).

This module is import-light (no torch): ``wmkit plugins`` and ``wmkit recipe show`` read it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Kind:
    """One kind of component.

    - ``name``: the kind's name (``wmkit plugins`` shows it; ``host.get(kind, name)``).
    - ``hook``: the ``register`` hook plugins implement to contribute components of this kind.
    - ``section``: the dotted recipe table that names the chosen component (under ``key``) and
      receives the component's own options.
    - ``default``: the component chosen when a recipe names none.
    - ``base``: ``"module:Class"`` of the base class implementations subclass.
    - ``arguments``: for model parts, the keyword arguments the constructor receives besides
      ``options`` (from :func:`wmkit.model.build_world_model`'s context); ``None`` for kinds that
      are not part of the world model (domains).
    - ``shared``: model-wide ``[model]`` keys merged into this component's options (its own
      section wins).
    - ``many``: the key holds a list of names (every listed component is used, e.g. loggers); the
      ``default`` names are then always used, whatever the list says, and a failure of one of them
      is the run's failure. Each chosen component's options join ``[<options_section>.<name>]``.
    - ``observer``: components of this kind watch a run without changing what it computes; their
      keys are left out of the recipe digest (run-directory names) and of the ``--resume`` check.
    """

    name: str
    hook: str
    section: str
    key: str
    default: str | tuple[str, ...]
    base: str
    summary: str
    arguments: tuple[str, ...] | None = None
    shared: tuple[str, ...] = ()
    many: bool = False
    options_section: str = ""
    observer: bool = False

    @property
    def path(self) -> str:
        """The dotted recipe key holding the chosen component's name."""
        return f"{self.section}.{self.key}"

    @property
    def label(self) -> str:
        """How messages name the kind ("aux loss", "action encoder")."""
        return self.name.replace("_", " ")

    def chosen(self, values: Mapping) -> Any:
        """The component name a (raw or resolved) recipe chooses; the default when absent (for a
        ``many`` kind: the listed names, ``[]`` when absent)."""
        node: Any = values
        for part in self.path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return [] if self.many else self.default
            node = node[part]
        return node

    def names(self, values: Mapping) -> list[str]:
        """Every component name a recipe chooses: ``[chosen]``, or for a ``many`` kind the always-used
        defaults followed by the listed names (each once, in order)."""
        if not self.many:
            return [self.chosen(values)]
        listed = self.chosen(values)
        listed = list(listed) if isinstance(listed, (list, tuple)) else []
        return list(dict.fromkeys([*self.always, *listed]))

    @property
    def always(self) -> tuple[str, ...]:
        """The components a ``many`` kind always uses (its defaults)."""
        return tuple(self.default) if self.many else ()

    def options_path(self, name: str) -> str:
        """The recipe table holding the options of component ``name``."""
        return f"{self.options_section}.{name}" if self.many else self.section

    def options(self, values: Mapping, name: str | None = None) -> dict:
        """The resolved options a component of this kind (``name``, for a ``many`` kind) is constructed with."""
        node: Any = values
        for part in self.options_path(name or "").split("."):
            if self.many and (not isinstance(node, Mapping) or part not in node):
                return {}  # a component without options has no table
            node = node[part]
        model = values.get("model", {})
        return {**{k: model[k] for k in self.shared if k in model}, **node}

    def base_class(self) -> type:
        module, _, attr = self.base.partition(":")
        return getattr(importlib.import_module(module), attr)


KINDS: tuple[Kind, ...] = (
    Kind("domain", "wmkit_register_domains", "data", "domain", "code", "wmkit.domain:Domain",
         "a kind of transition: reads rows, tokenizes states, computes actions and labels"),
    Kind("encoder", "wmkit_register_encoders", "model.encoder", "name", "looped_transformer",
         "wmkit.components:Encoder", "state encoder: token ids -> pooled readout after every loop",
         arguments=("vocab_size", "max_len", "pad_id", "dim", "heads", "loops"), shared=("mlp_ratio", "dropout")),
    Kind("action_encoder", "wmkit_register_action_encoders", "model.action", "name", "mlp",
         "wmkit.components:ActionEncoder", "action encoder: the domain's action inputs -> an action embedding",
         arguments=("action_dim", "vocab_size", "pad_id", "dim", "heads"), shared=("mlp_ratio", "dropout")),
    Kind("predictor", "wmkit_register_predictors", "model.predictor", "name", "looped_transformer",
         "wmkit.components:Predictor", "latent predictor: (state, action embedding) -> next-state latent",
         arguments=("dim", "heads"), shared=("mlp_ratio", "dropout")),
    Kind("regularizer", "wmkit_register_regularizers", "regularizer", "name", "none",
         "wmkit.components:Regularizer", "batch-statistic regularizer on embeddings (VICReg, SIGReg)",
         arguments=("dim",)),
    Kind("aux_loss", "wmkit_register_aux_losses", "loss.aux", "name", "none",
         "wmkit.components:AuxLoss", "auxiliary loss on early encoder loops (deep supervision)",
         arguments=("dim",)),
    Kind("pred_cost", "wmkit_register_pred_costs", "loss.pred", "form", "projector_mse",
         "wmkit.components:PredCost", "prediction cost: prediction vs target -> named terms, each weighted by "
         "loss.<term>.weight (pred, dir, mag, cov)", arguments=("dim",)),
    Kind("logger", "wmkit_register_loggers", "train", "loggers", ("jsonl",), "wmkit.loggers:Logger",
         "experiment logger: step terms, probes, warnings, hyper-parameters, the audit's headline",
         many=True, options_section="logger", observer=True),
)

BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KINDS}

#: the kinds built into the world model, in construction order (loggers and domains are not)
MODEL_KINDS: tuple[Kind, ...] = tuple(kind for kind in KINDS if kind.arguments is not None)


def get(name: str) -> Kind:
    """The kind called ``name``; ``KeyError`` lists the kinds."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown component kind {name!r}; kinds are {', '.join(BY_NAME)}") from None
