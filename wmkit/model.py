"""The JEPA world model: online encoder, EMA target, action encoder, predictor, training objective.

:func:`build_world_model` composes the components a recipe names (resolved through the plugin
host; this module never imports a plugin by name). :meth:`WorldModel.forward` computes the
training loss of reference §4 from the terms in :mod:`wmkit.objective`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from wmkit import objective
from wmkit.components import AuxInputs, EncoderOutput
from wmkit.distributed import gather_batch
from wmkit.errors import RecipeError, WmkitError
from wmkit.layers import count_parameters

PRED_FORMS = ("projector_mse", "cosine", "delta_mse", "delta_cosine")
#: prediction-loss forms that predict the displacement target(after) − target(before)
DELTA_FORMS = ("delta_mse", "delta_cosine")
APPLY_TO = ("encoder", "predictor", "both")


@dataclass(frozen=True)
class ObjectiveSettings:
    """The recipe keys the objective reads (``loss.*``, ``regularizer.*``, a few ``model.*``)."""

    pred_weight: float
    pred_form: str
    dir_weight: float
    mag_weight: float
    cov_weight: float
    aux_weight: float
    aux_loops: tuple[int, ...]
    reg_weight: float
    reg_apply_to: str
    input_loop: int
    ema_decay: float


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


def action_mlp(action_dim: int, hidden: int, dim: int) -> nn.Sequential:
    """The action encoder h: Linear(A, hidden) → GELU → Linear(hidden, D) (reference §3)."""
    return nn.Sequential(nn.Linear(action_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


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
      with dropout on: defect D7);
    - ``action_encoder``: :func:`action_mlp`; ``predictor``: the predictor component;
    - ``pred_projector`` / ``target_projector``: only when ``model.projector.enabled``, used only
      by the ``projector_mse`` prediction loss (both trainable, as in the reference);
    - ``regularizer`` and ``aux_loss``: the loss components the recipe names.
    """

    def __init__(self, *, encoder: nn.Module, predictor: nn.Module, regularizer: nn.Module,
                 aux_loss: nn.Module, action_encoder: nn.Module, settings: ObjectiveSettings,
                 projector_hidden: int | None, dim: int):
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

    # -- modes and the target ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> "WorldModel":
        """Set train/eval mode everywhere except the target, which always stays in eval mode."""
        super().train(mode)
        self.target.eval()
        return self

    @torch.no_grad()
    def update_target(self) -> None:
        """EMA step θ̄ ← d·θ̄ + (1 − d)·θ with d = ``model.target.ema_decay`` (reference §3).

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

    def _predictor_state(self, encoded_before: EncoderOutput) -> torch.Tensor:
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

    def predict_with(self, z_state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """ẑ = P(z_state, h(actions)) for given states and (possibly shuffled) raw actions."""
        return self.predictor(z_state, self.action_encoder(actions.float()))

    # -- training objective ------------------------------------------------------------------------
    def forward(self, before: torch.Tensor, after: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training losses for token ids ``before``/``after`` ``[B, L]`` and actions ``[B, A]``.

        Returns ``"loss"`` (the weighted total, with gradient) and the unweighted, detached terms:
        ``pred``, ``dir``, ``mag``, ``cov``, ``reg`` (+ ``reg_<term>``), ``aux`` (the sum over
        ``loss.aux.loops``; + ``aux_l<k>`` per loop). Reference §4:

        - z_t: online readout of ``before`` (loop ``input_loop`` if set), **detached** before the
          predictor, so the main prediction path trains predictor, action encoder and projectors
          only; z̄ = target(after) without gradient; ẑ = P(sg(z_t), h(a)).
        - loss = w_pred·L_pred + w_dir·L_dir + w_mag·L_mag + w_cov·L_cov + w_reg·R + w_aux·Σ_ℓ A_ℓ.
        - L_dir and L_mag compare d̂ = ẑ − z_t with d = z̄ − z_t. For the ``delta_*`` forms the
          target displacement is target(after) − target(before) (the paper's Δz, §"Negative
          results") in L_pred, L_dir and L_mag: with the online z_t on both sides,
          MSE(ẑ − z_t, z̄ − z_t) would reduce to MSE(ẑ, z̄).
        - L_cov and the regularizer (``apply_to = encoder``) see the online final readouts of
          before and after, concatenated, with gradient; ``apply_to = predictor`` regularizes ẑ
          with z̄ as the paired view; ``both`` adds the two (terms ``reg_encoder_*``/``reg_predictor_*``).
        - the auxiliary loss runs once per loop in ``loss.aux.loops`` on that loop's online readout
          of ``before`` (not detached: the gradient path into the encoder) with the shared predictor.
        - under mixed-precision autocast the loss terms are computed in float32.
        """
        s = self.settings
        encoded_before, encoded_after = self._encode_pair(self.encoder, before, after)
        delta_form = s.pred_form in DELTA_FORMS
        with torch.no_grad():
            if delta_form:
                target_before, target_after = (e.z.float() for e in self._encode_pair(self.target, before, after))
            else:
                target_after = self.target(after).z.float()
        action_embedding = self.action_encoder(actions.float())
        z_t = self._predictor_state(encoded_before).detach()
        pred = self.predictor(z_t, action_embedding).float()
        z_t = z_t.float()

        pred_delta = pred - z_t
        target_delta = target_after - (target_before if delta_form else z_t)
        losses = _LossAccumulator()
        # batch statistics, cosines and logits in float32 even under mixed-precision autocast
        with torch.autocast(device_type=pred.device.type, enabled=False):
            losses.add("pred", s.pred_weight, self._prediction_loss(pred, target_after, pred_delta, target_delta))
            losses.add("dir", s.dir_weight, objective.direction_loss(pred_delta, target_delta))
            losses.add("mag", s.mag_weight, objective.magnitude_loss(pred_delta, target_delta))
            # batch statistics see the global batch under torchrun (gather_batch is the identity otherwise)
            z_all = torch.cat([gather_batch(encoded_before.z), gather_batch(encoded_after.z)], dim=0).float()
            losses.add("cov", s.cov_weight, objective.covariance_loss(z_all))
            losses.add("reg", s.reg_weight, self._regularizer_loss(z_all, pred, target_after, losses))
            losses.add("aux", s.aux_weight, self._aux_loss(encoded_before, target_after, action_embedding.float(),
                                                             actions, losses))
        return losses.result(pred)

    def _prediction_loss(self, pred, target, pred_delta, target_delta) -> torch.Tensor:
        form = self.settings.pred_form
        if form == "projector_mse":
            return objective.pred_projector_mse(pred, target, self.pred_projector, self.target_projector)
        if form == "cosine":
            return objective.pred_cosine(pred, target)
        if form == "delta_mse":
            return objective.delta_mse(pred_delta, target_delta)
        return objective.delta_cosine(pred_delta, target_delta)

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

    def _aux_loss(self, encoded_before, target, action_embedding, actions, losses: _LossAccumulator) -> torch.Tensor:
        total = target.new_zeros(())
        for k in self.settings.aux_loops:
            if k > len(encoded_before.loops):
                raise WmkitError(f"loss.aux.loops names loop {k} but the encoder returned only "
                                 f"{len(encoded_before.loops)} loop readouts")
            inputs = AuxInputs(loop=k, loop_state=encoded_before.loops[k - 1].float(),
                               final_state=encoded_before.z.float(), target=target,
                               action_embedding=action_embedding, actions=actions, predictor=self.predictor)
            if getattr(self.aux_loss, "needs_global_batch", False):  # e.g. NT-Xent's in-batch negatives
                inputs = AuxInputs(loop=k, loop_state=gather_batch(inputs.loop_state),
                                   final_state=gather_batch(inputs.final_state), target=gather_batch(target),
                                   action_embedding=gather_batch(action_embedding), actions=gather_batch(actions),
                                   predictor=self.predictor)
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
        action_embedding = self.action_encoder(actions.float())
        state = self._predictor_state(online_before)
        pred = self.predictor(state, action_embedding)
        return Embeddings(
            online_before=online_before.z, online_after=online_after.z,
            target_before=target_before.z, target_after=target_after.z,
            pred=pred, action_embedding=action_embedding, predictor_input=state,
            online_loops_before=list(online_before.loops) if loops else None,
            online_loops_after=list(online_after.loops) if loops else None,
        )

    # -- reporting ---------------------------------------------------------------------------------
    def parameter_breakdown(self) -> list[tuple[str, int]]:
        """Parameter counts, as the rows of reference §3's table.

        "one block" appears when the encoder exposes its shared block as ``encoder.block``;
        "projectors" when they exist; "regularizer and aux loss" only if those have parameters.
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
        exported = (self.encoder, self.action_encoder, self.predictor)
        export = sum(count_parameters(m) for m in exported) + sum(
            b.numel() for m in exported for b in m.buffers() if b.is_floating_point())
        rows += [("total", count_parameters(self)),
                 ("trainable", sum(p.numel() for p in self.parameters() if p.requires_grad)),
                 ("inference export", export)]
        return rows


# -- construction ------------------------------------------------------------------------------------


def _section(recipe: Mapping, dotted: str) -> Any:
    node: Any = recipe
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise RecipeError(f"recipe is missing {dotted}; resolve it with wmkit.recipe.load_recipe")
        node = node[part]
    return node


def _settings(recipe: Mapping) -> ObjectiveSettings:
    loops = int(_section(recipe, "model.encoder.loops"))
    aux_loops = tuple(int(k) for k in _section(recipe, "loss.aux.loops"))
    for k in aux_loops:
        if not 1 <= k <= loops:
            raise RecipeError(f"loss.aux.loops: loop {k} is outside 1..{loops} (model.encoder.loops); "
                              f"loops are numbered from 1")
    input_loop = int(_section(recipe, "model.predictor.input_loop"))
    if not 0 <= input_loop <= loops:
        raise RecipeError(f"model.predictor.input_loop: {input_loop} is outside 0..{loops} "
                          f"(0 = final readout, k = loop k of model.encoder.loops)")
    form = _section(recipe, "loss.pred.form")
    if form not in PRED_FORMS:
        raise RecipeError(f"loss.pred.form: {form!r} is not one of {', '.join(PRED_FORMS)}")
    apply_to = _section(recipe, "regularizer.apply_to")
    if apply_to not in APPLY_TO:
        raise RecipeError(f"regularizer.apply_to: {apply_to!r} is not one of {', '.join(APPLY_TO)}")
    return ObjectiveSettings(
        pred_weight=float(_section(recipe, "loss.pred.weight")), pred_form=form,
        dir_weight=float(_section(recipe, "loss.dir.weight")),
        mag_weight=float(_section(recipe, "loss.mag.weight")),
        cov_weight=float(_section(recipe, "loss.cov.weight")),
        aux_weight=float(_section(recipe, "loss.aux.weight")), aux_loops=aux_loops,
        reg_weight=float(_section(recipe, "regularizer.weight")), reg_apply_to=apply_to,
        input_loop=input_loop, ema_decay=float(_section(recipe, "model.target.ema_decay")),
    )


def build_world_model(recipe: Mapping, *, vocab_size: int, pad_id: int, action_dim: int,
                      resolve: Callable[[str, str], type]) -> WorldModel:
    """Build the world model a resolved recipe describes.

    ``resolve(kind, name)`` returns a component class (``PluginHost.resolve``); kinds used:
    encoder, predictor, regularizer, aux_loss. Each component receives its recipe section as
    ``options``; the encoder and predictor also receive the model-wide ``mlp_ratio`` and
    ``dropout`` there (a value set in the component's own section wins). Call
    :func:`wmkit.seed.seed_everything` first: construction draws random initial weights.
    """
    dim, heads = int(_section(recipe, "model.dim")), int(_section(recipe, "model.heads"))
    if dim % heads:
        raise RecipeError(f"model.heads: {heads} does not divide model.dim = {dim}")
    settings = _settings(recipe)
    shared = {"mlp_ratio": int(_section(recipe, "model.mlp_ratio")), "dropout": float(_section(recipe, "model.dropout"))}
    encoder_options = {**shared, **_section(recipe, "model.encoder")}
    predictor_options = {**shared, **_section(recipe, "model.predictor")}
    regularizer_options = dict(_section(recipe, "regularizer"))
    aux_options = dict(_section(recipe, "loss.aux"))

    encoder = resolve("encoder", encoder_options["name"])(
        vocab_size=vocab_size, max_len=int(_section(recipe, "data.max_len")), pad_id=pad_id, dim=dim,
        heads=heads, loops=int(encoder_options["loops"]), options=encoder_options)
    action_encoder = action_mlp(action_dim, int(_section(recipe, "model.action.hidden")), dim)
    predictor = resolve("predictor", predictor_options["name"])(dim=dim, heads=heads, options=predictor_options)
    regularizer = resolve("regularizer", regularizer_options["name"])(dim=dim, options=regularizer_options)
    aux_loss = resolve("aux_loss", aux_options["type"])(dim=dim, options=aux_options)
    projector_hidden = int(_section(recipe, "model.projector.hidden")) if _section(recipe, "model.projector.enabled") else None
    return WorldModel(encoder=encoder, predictor=predictor, regularizer=regularizer, aux_loss=aux_loss,
                      action_encoder=action_encoder, settings=settings, projector_hidden=projector_hidden, dim=dim)
