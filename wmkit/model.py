"""The JEPA world model: online encoder, EMA target, action encoder, predictor, training objective.

:func:`build_world_model` composes the components a recipe names (resolved through the plugin
host; this module never imports a plugin by name). :meth:`WorldModel.forward` computes the
training loss of reference §4 (docs/reference.md#s4): encode, predict, then the weighted sum of the named
terms of the prediction cost, the regularizer and the auxiliary loss.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from wmkit import kinds
from wmkit.components import ActionInputs, AuxInputs, EncoderOutput, PredCostInputs
from wmkit.distributed import gather_batch
from wmkit.errors import RecipeError, WmkitError
from wmkit.layers import count_parameters
from wmkit.recipe import RecipeOptions

#: where a prediction cost's target displacement starts (:attr:`wmkit.components.PredCost.target_delta_origin`)
TARGET_DELTA_ORIGINS = ("predictor_input", "target_before")


@dataclass(frozen=True)
class ObjectiveSettings:
    """The recipe keys the objective reads (``loss.*``, ``regularizer.*``, a few ``model.*``).

    ``term_weights`` maps each term of the prediction cost to its ``loss.<term>.weight``.
    """

    term_weights: Mapping[str, float]
    aux_weight: float
    aux_loops: tuple[int, ...]
    reg_weight: float
    reg_apply_to: str
    input_loop: int
    ema_decay: float
    start: str = "none"


@dataclass
class Embeddings:
    """Embeddings of one batch of transitions (all ``[B, D]``), from :meth:`WorldModel.embed`.

    ``predictor_input`` is the state the predictor read: the online final readout of the before
    state, or loop k's readout when ``model.predictor.input_loop = k``. The per-loop online
    readouts are filled only when asked for (``loops=True``).
    """

    online_before: torch.Tensor
    online_after: torch.Tensor
    target_before: torch.Tensor
    target_after: torch.Tensor
    pred: torch.Tensor
    action_embedding: torch.Tensor
    predictor_input: torch.Tensor
    online_loops_before: list[torch.Tensor] | None = None
    online_loops_after: list[torch.Tensor] | None = None


def projector(dim: int, hidden: int) -> nn.Sequential:
    """A training-only projector: Linear(D, hidden) → BatchNorm1d → GELU → Linear(hidden, D)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Linear(hidden, dim))


class _LossAccumulator:
    """Sums ``weight × term`` into the total and keeps every term, detached, for logging.

    A term whose weight is 0 is reported but left out of the total, so it sends no gradient.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.terms: dict[str, torch.Tensor] = {}

    def add(self, name: str, weight: float, value: torch.Tensor) -> None:
        self.terms[name] = value.detach()
        if weight != 0:
            self.total = weight * value if self.total is None else self.total + weight * value

    def log(self, name: str, value: torch.Tensor) -> None:
        self.terms[name] = value.detach()

    def result(self, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        total = self.total if self.total is not None else reference.new_zeros(())
        return {"loss": total, **self.terms}


class WorldModel(nn.Module):
    """Online encoder, EMA target encoder, action encoder, predictor and training projectors.

    - ``encoder``: the online encoder (trained);
    - ``target``: a deep copy of the encoder with no gradients, moved by :meth:`update_target`
      and kept in eval mode even under ``model.train()`` (the reference computed its targets
      with dropout on: defect D7, docs/reference.md#d7);
    - ``action_encoder``: the action-encoder component (the paper's MLP over the action vector by
      default); ``predictor``: the predictor component;
    - ``pred_projector`` / ``target_projector``: only when ``model.projector.enabled``, handed to
      the prediction cost (the ``projector_mse`` form uses them; both trainable, as in the reference);
    - ``regularizer``, ``aux_loss`` and ``pred_cost``: the loss components the recipe names.
    """

    def __init__(self, *, encoder: nn.Module, predictor: nn.Module, regularizer: nn.Module,
                 aux_loss: nn.Module, action_encoder: nn.Module, pred_cost: nn.Module,
                 settings: ObjectiveSettings, projector_hidden: int | None, dim: int):
        super().__init__()
        self.settings = settings
        self.dim = dim
        self.encoder = encoder
        self.target = copy.deepcopy(encoder)
        self.target.requires_grad_(False)
        self.target.eval()
        self.action_encoder = action_encoder
        self.predictor = predictor
        if projector_hidden is not None:
            self.pred_projector = projector(dim, projector_hidden)
            self.target_projector = projector(dim, projector_hidden)
        else:
            self.pred_projector = None
            self.target_projector = None
        self.regularizer = regularizer
        self.aux_loss = aux_loss
        self.pred_cost = pred_cost  # the last child: the older parts keep their parameter order (optimizer state)
        # ẑ = target(before) + g·P(z, a): g = 0 at the start makes the first prediction the copy baseline
        self.residual_gain = nn.Parameter(torch.zeros(())) if settings.start == "target_before" else None
        if getattr(action_encoder, "reads_state", False) and self.residual_gain is None:
            raise RecipeError("model.action: this action encoder reads target(before), which only predictions that "
                              "start from it have; set model.predictor.start = \"target_before\"")

    # -- modes and the target ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> "WorldModel":
        """Set train/eval mode everywhere except the target, which always stays in eval mode."""
        super().train(mode)
        self.target.eval()
        return self

    @torch.no_grad()
    def update_target(self) -> None:
        """EMA step θ̄ ← d·θ̄ + (1 − d)·θ with d = ``model.target.ema_decay``
        (reference §3, docs/reference.md#s3).

        Call it after the optimizer step. Buffers (if an encoder has any) are copied.
        """
        decay = self.settings.ema_decay
        for target_param, online_param in zip(self.target.parameters(), self.encoder.parameters()):
            target_param.mul_(decay).add_(online_param.detach(), alpha=1.0 - decay)
        for target_buffer, online_buffer in zip(self.target.buffers(), self.encoder.buffers()):
            target_buffer.copy_(online_buffer)

    # -- building blocks of forward and embed ---------------------------------------------------------
    @staticmethod
    def _encode_pair(encoder: nn.Module, before: torch.Tensor, after: torch.Tensor
                     ) -> tuple[EncoderOutput, EncoderOutput]:
        """Encode both states; in one batch when their shapes agree (as the reference does)."""
        if before.shape != after.shape:
            return encoder(before), encoder(after)
        both = encoder(torch.cat([before, after], dim=0))
        n = before.shape[0]
        first = EncoderOutput(z=both.z[:n], loops=[z[:n] for z in both.loops])
        second = EncoderOutput(z=both.z[n:], loops=[z[n:] for z in both.loops])
        return first, second

    @property
    def starts_from_target(self) -> bool:
        """Whether predictions are target(before) plus a learned change (``model.predictor.start``)."""
        return self.residual_gain is not None

    def predictor_input(self, encoded_before: EncoderOutput) -> torch.Tensor:
        """The readout the predictor reads: final (input_loop 0) or loop k's."""
        k = self.settings.input_loop
        if k == 0:
            return encoded_before.z
        if k > len(encoded_before.loops):
            raise WmkitError(f"model.predictor.input_loop = {k} but the encoder returned only "
                             f"{len(encoded_before.loops)} loop readouts; lower it or raise model.encoder.loops")
        return encoded_before.loops[k - 1]

    def encode(self, tokens: torch.Tensor, *, target: bool = False) -> EncoderOutput:
        """The online (or, with ``target=True``, the EMA target) encoder's output for ``tokens``."""
        return (self.target if target else self.encoder)(tokens)

    def predict_with(self, z_state: torch.Tensor, actions: "ActionInputs | torch.Tensor", *,
                     base: torch.Tensor | None = None) -> torch.Tensor:
        """ẑ for given predictor inputs and (possibly another sample's) actions.

        ``actions`` is :class:`~wmkit.components.ActionInputs` or a bare action-vector tensor.
        ``base`` is target(before) of the same rows, required when predictions start from it.
        """
        inputs = actions if isinstance(actions, ActionInputs) else ActionInputs(vector=actions)
        return self._predict(z_state, self.embed_action(inputs, base), base)

    def embed_action(self, inputs: ActionInputs, base: torch.Tensor | None) -> torch.Tensor:
        """The action embedding of ``inputs`` applied to the rows whose target(before) is ``base``
        (read only by an action encoder that :attr:`~wmkit.components.ActionEncoder.reads_state`)."""
        if getattr(self.action_encoder, "reads_state", False):
            if base is None:
                raise WmkitError("this model's action encoder reads target(before): pass base=target(before)")
            inputs = inputs.on(base.float())
        return self.action_encoder(inputs)

    def _predict(self, z_state: torch.Tensor, action_embedding: torch.Tensor,
                 base: torch.Tensor | None) -> torch.Tensor:
        out = self.predictor(z_state, action_embedding)
        if self.residual_gain is None:
            return out
        if base is None:
            raise WmkitError("this model predicts target(before) + a change (model.predictor.start = "
                             "'target_before'): pass base=target(before)")
        return base.to(out.dtype) + self.residual_gain.to(out.dtype) * out

    # -- training objective ------------------------------------------------------------------------
    @property
    def reads_target_before(self) -> bool:
        """Whether the objective reads target(before) besides target(after) (a prediction cost whose target
        displacement starts there, or predictions that start from it)."""
        return self.pred_cost.target_delta_origin == "target_before" or self.starts_from_target

    def forward(self, before: torch.Tensor, after: torch.Tensor, actions: torch.Tensor, *,
                targets: tuple[torch.Tensor | None, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Training losses for token ids ``before``/``after`` ``[B, L]`` and actions ``[B, A]``.

        ``targets``: precomputed ``(target(before) or None, target(after))`` readouts (float32, no
        gradient) to use instead of running the target encoder (:mod:`wmkit.target_cache`);
        target(before) is required when :attr:`reads_target_before`.

        Returns ``"loss"`` (the weighted total, with gradient) and the unweighted, detached terms:
        the prediction cost's (``pred``, ``dir``, ``mag``, ``cov`` for the built-in forms), ``reg``
        (+ ``reg_<term>``), ``aux`` (the sum over ``loss.aux.loops``; + ``aux_l<k>`` per loop).
        Reference §4 (docs/reference.md#s4):

        - z_t: online readout of ``before`` (loop ``input_loop`` if set), **detached** before the
          predictor, so the main prediction path trains predictor, action encoder and projectors
          only; z̄ = target(after) without gradient; ẑ = P(sg(z_t), h(a)).
        - loss = Σ_t w_t·C_t over the prediction cost's terms (w_t = ``loss.<t>.weight``) + w_reg·R
          + w_aux·Σ_ℓ A_ℓ.
        - the cost compares ẑ with z̄ and d̂ = ẑ − z_t with d = z̄ − z_t; a cost whose
          ``target_delta_origin`` is ``target_before`` (the ``delta_*`` forms) gets
          d = target(after) − target(before) (the paper's Δz, §"Negative results"): with the online
          z_t on both sides, MSE(ẑ − z_t, z̄ − z_t) would reduce to MSE(ẑ, z̄).
        - the cost's ``online`` view and the regularizer (``apply_to = encoder``) see the online final
          readouts of before and after, concatenated, with gradient; ``apply_to = predictor``
          regularizes ẑ with z̄ as the paired view; ``both`` adds the two (terms ``reg_encoder_*``/``reg_predictor_*``).
        - the auxiliary loss runs once per loop in ``loss.aux.loops`` on that loop's online readout
          of ``before`` (not detached: the gradient path into the encoder) with the shared predictor.
        - under mixed-precision autocast the loss terms are computed in float32.
        """
        s = self.settings
        # encode
        encoded_before, encoded_after = self._encode_pair(self.encoder, before, after)
        # displacements are measured from target(before) for such costs and for target-space starts
        from_target = self.reads_target_before
        if targets is not None:
            target_before, target_after = targets
            if from_target and target_before is None:
                raise WmkitError("this objective reads target(before): pass targets=(target_before, target_after)")
        else:
            with torch.no_grad():
                if from_target:
                    target_before, target_after = (e.z.float() for e in self._encode_pair(self.target, before, after))
                else:
                    target_before, target_after = None, self.target(after).z.float()
        # predict
        action_embedding = self.embed_action(ActionInputs(vector=actions.float(), before=before, after=after),
                                             target_before)
        z_t = self.predictor_input(encoded_before).detach()
        pred = self._predict(z_t, action_embedding, target_before).float()
        z_t = z_t.float()
        pred_delta = pred - (target_before if self.starts_from_target else z_t)
        target_delta = target_after - (target_before if from_target else z_t)
        # sum the named terms; batch statistics, cosines and logits in float32 even under autocast
        losses = _LossAccumulator()
        with torch.autocast(device_type=pred.device.type, enabled=False):
            # batch statistics see the global batch under torchrun (gather_batch is the identity otherwise)
            z_all = torch.cat([gather_batch(encoded_before.z), gather_batch(encoded_after.z)], dim=0).float()
            cost = self.pred_cost(PredCostInputs(pred=pred, target=target_after, pred_delta=pred_delta,
                                                 target_delta=target_delta, online=z_all,
                                                 pred_projector=self.pred_projector,
                                                 target_projector=self.target_projector))
            for name, value in cost.items():
                if name not in s.term_weights:
                    raise WmkitError(f"the prediction cost returned a term {name!r} missing from its `terms` "
                                     f"({', '.join(s.term_weights)})")
                losses.add(name, s.term_weights[name], value)
            losses.add("reg", s.reg_weight, self._regularizer_loss(z_all, pred, target_after, losses))
            losses.add("aux", s.aux_weight, self._aux_loss(encoded_before, target_after, action_embedding.float(),
                                                             actions, losses, target_before))
        return losses.result(pred)

    def _regularizer_loss(self, z_all, pred, target, losses: _LossAccumulator) -> torch.Tensor:
        where = self.settings.reg_apply_to
        views = []
        if where in ("encoder", "both"):
            views.append(("encoder", z_all, None))
        if where in ("predictor", "both"):
            if getattr(self.regularizer, "needs_global_batch", True):
                pred, target = gather_batch(pred), gather_batch(target)
            views.append(("predictor", pred, target))
        total = pred.new_zeros(())
        for name, embeddings, paired in views:
            out = self.regularizer(embeddings, paired)
            prefix = f"reg_{name}_" if len(views) > 1 else "reg_"
            for term, value in out.items():
                if term != "loss":
                    losses.log(prefix + term, value)
            total = total + out["loss"]
        return total

    def _prediction_rule(self, base: torch.Tensor | None):
        """``predictor(state, action_embedding)`` as the main loss predicts: the auxiliary losses see the
        same rule (target(before) + g·P when predictions start from it)."""
        if not self.starts_from_target:
            return self.predictor
        return lambda state, action: self._predict(state, action, base)

    def _aux_loss(self, encoded_before, target, action_embedding, actions, losses: _LossAccumulator,
                  target_before: torch.Tensor | None) -> torch.Tensor:
        total = target.new_zeros(())
        predictor = self._prediction_rule(target_before)
        for k in self.settings.aux_loops:
            if k > len(encoded_before.loops):
                raise WmkitError(f"loss.aux.loops names loop {k} but the encoder returned only "
                                 f"{len(encoded_before.loops)} loop readouts")
            inputs = AuxInputs(loop=k, loop_state=encoded_before.loops[k - 1].float(),
                               final_state=encoded_before.z.float(), target=target,
                               action_embedding=action_embedding, actions=actions, predictor=predictor)
            if getattr(self.aux_loss, "needs_global_batch", False):  # e.g. NT-Xent's in-batch negatives
                inputs = AuxInputs(loop=k, loop_state=gather_batch(inputs.loop_state),
                                   final_state=gather_batch(inputs.final_state), target=gather_batch(target),
                                   action_embedding=gather_batch(action_embedding), actions=gather_batch(actions),
                                   predictor=self._prediction_rule(
                                       None if target_before is None else gather_batch(target_before)))
            out = self.aux_loss(inputs)
            losses.log(f"aux_l{k}", out["loss"])
            for term, value in out.items():
                if term != "loss":
                    losses.log(f"aux_l{k}_{term}", value)
            total = total + out["loss"].float()
        return total

    # -- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, before: torch.Tensor, after: torch.Tensor, actions: torch.Tensor, *,
              loops: bool = False) -> Embeddings:
        """Every embedding of a batch, without gradients. Call ``model.eval()`` first."""
        online_before, online_after = self._encode_pair(self.encoder, before, after)
        target_before, target_after = self._encode_pair(self.target, before, after)
        action_embedding = self.embed_action(ActionInputs(vector=actions.float(), before=before, after=after),
                                             target_before.z)
        state = self.predictor_input(online_before)
        pred = self._predict(state, action_embedding, target_before.z)
        return Embeddings(
            online_before=online_before.z, online_after=online_after.z,
            target_before=target_before.z, target_after=target_after.z,
            pred=pred, action_embedding=action_embedding, predictor_input=state,
            online_loops_before=list(online_before.loops) if loops else None,
            online_loops_after=list(online_after.loops) if loops else None,
        )

    # -- reporting ---------------------------------------------------------------------------------
    def parameter_breakdown(self) -> list[tuple[str, int]]:
        """Parameter counts, as the rows of reference §3's table (docs/reference.md#s3).

        "one block" appears when the encoder exposes its shared block as ``encoder.block``;
        "projectors" when they exist; "regularizer and aux loss" and "prediction cost" only if those
        have parameters.
        "trainable" excludes the EMA target. "inference export" is what a deployment keeps:
        online encoder, action encoder and predictor, plus their floating-point buffers (the
        positional-encoding table: 65,664 floats at max_len 512, D 128).
        """
        rows: list[tuple[str, int]] = []
        block = getattr(self.encoder, "block", None)
        if isinstance(block, nn.Module):
            rows.append(("one block", count_parameters(block)))
        rows += [("online encoder", count_parameters(self.encoder)),
                 ("EMA target", count_parameters(self.target)),
                 ("action encoder", count_parameters(self.action_encoder)),
                 ("predictor", count_parameters(self.predictor))]
        if self.pred_projector is not None:
            rows.append(("projectors", count_parameters(self.pred_projector) + count_parameters(self.target_projector)))
        extra = count_parameters(self.regularizer) + count_parameters(self.aux_loss)
        if extra:
            rows.append(("regularizer and aux loss", extra))
        if count_parameters(self.pred_cost):
            rows.append(("prediction cost", count_parameters(self.pred_cost)))
        exported = (self.encoder, self.action_encoder, self.predictor)
        export = sum(count_parameters(m) for m in exported) + sum(
            b.numel() for m in exported for b in m.buffers() if b.is_floating_point())
        rows += [("total", count_parameters(self)),
                 ("trainable", sum(p.numel() for p in self.parameters() if p.requires_grad)),
                 ("inference export", export)]
        return rows


# -- construction ------------------------------------------------------------------------------------


def _term_weight(recipe: Mapping, term: str) -> float:
    """``loss.<term>.weight`` of a prediction-cost term (a third-party cost may bring its own terms)."""
    section = recipe.get("loss", {}).get(term)
    if not isinstance(section, Mapping) or "weight" not in section:
        raise RecipeError(f"recipe is missing loss.{term}.weight for the prediction cost's term {term!r}; "
                          f"set it with --set loss.{term}.weight=W")
    return float(section["weight"])


def _settings(o: RecipeOptions, recipe: Mapping, cost_terms: tuple[str, ...]) -> ObjectiveSettings:
    return ObjectiveSettings(
        term_weights={term: _term_weight(recipe, term) for term in cost_terms},
        aux_weight=o.loss.aux.weight, aux_loops=tuple(o.loss.aux.loops), reg_weight=o.regularizer.weight,
        reg_apply_to=o.regularizer.apply_to, input_loop=o.model.predictor.input_loop,
        ema_decay=o.model.target.ema_decay, start=o.model.predictor.start,
    )


def build_world_model(recipe: Mapping, *, vocab_size: int, pad_id: int, action_dim: int,
                      resolve: Callable[[str, str], type]) -> WorldModel:
    """Build the world model a resolved recipe describes.

    ``resolve(kind, name)`` returns a component class (``PluginHost.resolve``). Every model kind of
    :data:`wmkit.kinds.MODEL_KINDS` is built the same way: its class receives the keyword arguments
    its row names (from the context below) and ``options``, its recipe section with the model-wide
    keys the row shares (``mlp_ratio``, ``dropout``; a value set in the component's own section
    wins). Call :func:`wmkit.seed.seed_everything` first: construction draws random initial weights.
    """
    o = RecipeOptions.of(recipe)
    o.check_model()  # the cross-field checks, for values that did not come through load_recipe
    dim, heads = o.model.dim, o.model.heads
    context = {"vocab_size": vocab_size, "pad_id": pad_id, "action_dim": action_dim, "dim": dim, "heads": heads,
               "max_len": o.data.max_len, "loops": o.model.encoder.loops}
    parts = {}
    for kind in kinds.MODEL_KINDS:
        options = kind.options(o)
        cls = resolve(kind.name, kind.chosen(o))
        parts[kind.name] = cls(**{name: context[name] for name in kind.arguments}, options=options)
    cost = parts["pred_cost"]
    if cost.target_delta_origin not in TARGET_DELTA_ORIGINS:
        raise WmkitError(f"prediction cost {type(cost).__name__}: target_delta_origin = {cost.target_delta_origin!r} "
                         f"is not one of {', '.join(TARGET_DELTA_ORIGINS)}")
    projector_hidden = o.model.projector.hidden if o.model.projector.enabled else None
    return WorldModel(**parts, settings=_settings(o, recipe, tuple(cost.terms)), projector_hidden=projector_hidden,
                      dim=dim)


def build_initial_world_model(recipe: Mapping, *, vocab_size: int, pad_id: int, action_dim: int,
                              resolve: Callable[[str, str], type]) -> WorldModel:
    """The world model exactly as training builds it before its first step: everything seeded with
    ``meta.seed``, then built (defect D3, docs/reference.md#d3). The audit rebuilds it to measure how far
    the target moved."""
    from wmkit.seed import seed_everything

    seed_everything(RecipeOptions.of(recipe).meta.seed)
    return build_world_model(recipe, vocab_size=vocab_size, pad_id=pad_id, action_dim=action_dim, resolve=resolve)
